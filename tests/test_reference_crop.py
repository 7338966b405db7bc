"""prepare_reference frames a photo like the training data (a square around the person, black outside the
photo, resized uniformly): never stretched, whether the person comes from a detector, from the pixels that
differ from a plain background, or nobody is found (centre crop). Pose folders are padded, not stretched."""

import numpy as np
import pytest
from PIL import Image
from test_live import FakeDetector

from turbonext.jobs.driving_inputs import poses_from_folder
from turbonext.jobs.reference import foreground_box, prepare_reference


BLOB = (200, 60, 40)  # a reddish figure-like block, far from black and from the grey-blue background below


def photo(h: int = 200, w: int = 300, background=(0, 0, 0), box=(200, 60, 240, 140)) -> np.ndarray:
    """An h x w photo with a BLOB-coloured figure (x0, y0, x1, y1): 40 wide, 80 tall, right of centre."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = background
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = BLOB
    img[y0:y0 + 12, x0 + 14:x1 - 14] = (240, 200, 160)  # a head, so the figure is not a plain rectangle
    return img


def figure_extent(image: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the pixels close to BLOB's colour."""
    near = np.abs(image.astype(int) - BLOB).max(axis=2) < 40
    ys, xs = np.nonzero(near)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("background", [(0, 0, 0), (90, 140, 200)], ids=["black", "plain-colour"])
def test_a_non_square_reference_is_cropped_around_the_figure_not_stretched(background):
    prepared = prepare_reference(photo(background=background), None, 64, require_person=False)
    assert prepared.image.shape == (64, 64, 3) and not prepared.person_found and prepared.method == "foreground"
    # the square is centred on the figure's box (200..240 x 60..140) with 20% of its longer side around it
    assert prepared.crop == pytest.approx((220 - 56, 100 - 56, 112))
    assert prepared.crop_box == (164, 44, 276, 156)
    x0, y0, x1, y1 = figure_extent(prepared.image)
    scale = 64 / 112
    assert abs((x1 - x0) - 40 * scale) <= 1.5 and abs((y1 - y0) - 80 * scale) <= 1.5  # 22.9 x 45.7 px: not stretched
    assert abs((x0 + x1) / 2 - 32) <= 1 and abs((y0 + y1) / 2 - 32) <= 1  # centred
    # a whole-photo resize would have squeezed it to 40 * 64/300 = 8.5 px wide and 80 * 64/200 = 25.6 px tall
    assert prepared.summary == ("reference 300x200 cropped to the figure on its plain background (164,44,276,156) "
                                "and resized to 64x64")
    assert "no pose detector is available" in prepared.notice


def test_a_figure_near_the_edge_is_padded_black_where_the_square_leaves_the_photo():
    prepared = prepare_reference(photo(box=(270, 60, 300, 140)), None, 64, require_person=False)
    x0, y0, x1, y1 = prepared.crop_box
    assert x1 > 300  # the square reaches past the photo's right edge ...
    assert prepared.image[:, -5:].max() == 0  # ... and is black there
    assert "padded black outside the photo" in prepared.summary


def test_a_square_reference_is_unchanged_in_content():
    square = photo(h=64, w=64, box=(20, 10, 40, 54))
    prepared = prepare_reference(square, None, 64, require_person=False)
    assert prepared.method == "whole" and prepared.crop_box == (0, 0, 64, 64)
    np.testing.assert_array_equal(prepared.image, square)
    assert prepared.summary == "reference 64x64 used whole (it is square) and kept at 64x64"
    bigger = prepare_reference(photo(h=128, w=128, box=(40, 20, 80, 108)), None, 64, require_person=False)
    np.testing.assert_array_equal(bigger.image, np.asarray(Image.fromarray(photo(h=128, w=128, box=(40, 20, 80, 108)))
                                                           .resize((64, 64), Image.BICUBIC)))  # only resized


def test_a_busy_non_square_photo_with_nobody_found_gets_a_centre_square_crop():
    busy = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert foreground_box(busy) is None  # no plain background to tell the figure from
    prepared = prepare_reference(busy, None, 64, require_person=False)
    assert prepared.method == "centre" and prepared.crop_box == (20, 0, 140, 120)
    np.testing.assert_array_equal(prepared.image, np.asarray(Image.fromarray(busy[:, 20:140]).resize((64, 64),
                                                                                                      Image.BICUBIC)))
    assert "centre square crop" in prepared.notice and "centre-cropped to (20,0,140,120)" in prepared.summary


def test_a_detected_person_decides_the_crop():
    prepared = prepare_reference(photo(background=(90, 140, 200)), FakeDetector(), 64)
    assert prepared.person_found and prepared.method == "person" and prepared.notice is None
    assert prepared.pose_map is not None and prepared.pose_map.max() > 0
    # FakeDetector: keypoints spanning 152 px (0.95 of a 160 px person) centred in x -> a 213 px square around them
    x0, y0, x1, y1 = prepared.crop_box
    assert (x1 - x0, y1 - y0) == (213, 213) and abs((x0 + x1) / 2 - 150) <= 1
    assert prepared.summary.startswith(f"reference 300x200 cropped to the person ({x0},{y0},{x1},{y1})")
    assert prepared.summary.endswith("resized to 64x64")


def test_nobody_found_by_the_detector_falls_back_to_the_figure_unless_a_person_is_required():
    class Nobody(FakeDetector):
        def detect(self, image):
            return []

    prepared = prepare_reference(photo(), Nobody(), 64, require_person=False)
    assert prepared.method == "foreground" and "no person was found" in prepared.notice
    with pytest.raises(ValueError, match="no person was found"):
        prepare_reference(photo(), Nobody(), 64)


def test_foreground_box_ignores_a_faint_background_and_finds_the_figure():
    img = photo(background=(30, 30, 30))
    img[::7, ::5] += 10  # faint texture, under the tolerance
    assert foreground_box(img) == (200.0, 60.0, 240.0, 140.0)
    assert foreground_box(np.zeros((40, 60, 3), np.uint8)) is None


def test_non_square_pose_images_are_padded_black_not_stretched(tmp_path):
    pose = np.zeros((40, 80, 3), np.uint8)
    pose[10:30, 30:50] = (255, 0, 0)  # a 20 x 20 square in the middle
    Image.fromarray(pose).save(tmp_path / "000.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "001.png")
    first, second = poses_from_folder(tmp_path, 64)
    arr = np.asarray(first)
    ys, xs = np.nonzero(arr[..., 0] > 128)
    assert first.size == (64, 64) and abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 1  # still square
    assert arr[:12].max() == 0 and arr[-12:].max() == 0  # the bands above and below are black padding
    assert np.asarray(second).max() == 0


def test_pipeline_and_pose_lists_pad_other_shapes_instead_of_stretching(tiny_pipe):
    import torch

    from turbonext.jobs.clip import load_poses
    from turbonext.utils.images import image_to_tensor, resize_keeping_aspect

    wide = photo()  # 200 x 300, the figure 40 wide and 80 tall
    out = (resize_keeping_aspect(image_to_tensor(wide), 96, 96).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    x0, y0, x1, y1 = figure_extent(out)
    assert abs((y1 - y0) / (x1 - x0) - 2.0) < 0.25  # still twice as tall as wide (a stretch would make it 3x)
    assert out[:10].max() < 10 and out[-10:].max() < 10  # padded black above and below
    poses = load_poses([Image.fromarray(wide)], size=96, max_frames=1, detector=None, fps=12.0)
    x0, y0, x1, y1 = figure_extent(np.asarray(poses[0]))
    assert abs((y1 - y0) / (x1 - x0) - 2.0) < 0.25
    # the pipeline: a non-square reference is padded to the output's shape, the same as padding it first
    square = resize_keeping_aspect(image_to_tensor(wide), 300, 300)
    tokens = {k: t.clone() for k, t in tiny_pipe.set_reference(wide, height=64, width=64).tokens.items()}
    padded = tiny_pipe.set_reference(square, height=64, width=64).tokens
    assert tokens.keys() == padded.keys() and all(torch.allclose(tokens[k], padded[k], atol=1e-4) for k in tokens)
    stretched = torch.nn.functional.interpolate(image_to_tensor(wide)[None], size=(64, 64), mode="bicubic")[0]
    other = tiny_pipe.set_reference(stretched.clamp(0, 1), height=64, width=64).tokens
    assert not all(torch.allclose(tokens[k], other[k], atol=1e-4) for k in tokens)  # the old, stretched input
