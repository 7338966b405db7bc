"""The rainbow skeleton renderer and the COCO-17 keypoint structure, on hand-made keypoints."""

from __future__ import annotations

import colorsys
import subprocess
import sys

import numpy as np
import pytest

from turbonext.pose import COCO_KEYPOINTS, FACE_COLORS, LIMB_COLORS, LIMBS, Person, render_pose
from turbonext.pose.keypoints import KEYPOINT_INDEX, people_from_array, people_to_array
from turbonext.pose.render import LIMB_TWINS, default_line_width


# A person facing the camera (their left is the image's right), arms and legs apart so that no
# limb midpoint is covered by another limb or dot. 512 x 512 pixels.
STANDING = {
    "nose": (256, 92),
    "left_eye": (270, 70),
    "right_eye": (242, 70),
    "left_ear": (290, 78),
    "right_ear": (222, 78),
    "left_shoulder": (310, 140),
    "right_shoulder": (202, 140),
    "left_elbow": (370, 200),
    "right_elbow": (142, 200),
    "left_wrist": (420, 260),
    "right_wrist": (92, 260),
    "left_hip": (290, 290),
    "right_hip": (222, 290),
    "left_knee": (300, 380),
    "right_knee": (212, 380),
    "left_ankle": (305, 470),
    "right_ankle": (207, 470),
}


# The palette as documented (docs/pose_palette.md), written out here so that a table swapped in the code
# cannot make the tests that read the code's own table pass. The person's left is cool, their right warm.
EXPECTED_LIMB_COLORS = {
    "shoulders": (255, 255, 0),  # yellow
    "hips": (0, 0, 255),  # blue
    "left_torso": (0, 128, 255),  # azure
    "right_torso": (255, 0, 128),  # rose
    "left_thigh": (0, 255, 255),  # cyan
    "left_shin": (128, 255, 0),  # chartreuse
    "right_thigh": (255, 0, 255),  # magenta
    "right_shin": (128, 0, 255),  # violet
    "left_upper_arm": (0, 255, 0),  # green
    "left_forearm": (0, 255, 128),  # spring green
    "right_upper_arm": (255, 0, 0),  # red
    "right_forearm": (255, 128, 0),  # orange
}
EXPECTED_FACE_COLORS = {
    "nose": (255, 255, 255),
    "left_eye": (0, 255, 0),
    "right_eye": (255, 0, 0),
    "left_ear": (0, 128, 255),
    "right_ear": (255, 128, 0),
}
# Body joints: dots in the colour of the limb that leaves them towards the hand or foot.
EXPECTED_JOINT_COLORS = {
    "left_shoulder": (0, 255, 0),
    "right_shoulder": (255, 0, 0),
    "left_elbow": (0, 255, 128),
    "right_elbow": (255, 128, 0),
    "left_wrist": (0, 255, 128),
    "right_wrist": (255, 128, 0),
    "left_hip": (0, 255, 255),
    "right_hip": (255, 0, 255),
    "left_knee": (128, 255, 0),
    "right_knee": (128, 0, 255),
    "left_ankle": (128, 255, 0),
    "right_ankle": (128, 0, 255),
}
EXPECTED_LIMB_ENDS = {
    "shoulders": ("left_shoulder", "right_shoulder"),
    "hips": ("left_hip", "right_hip"),
    "left_torso": ("left_shoulder", "left_hip"),
    "right_torso": ("right_shoulder", "right_hip"),
    "left_thigh": ("left_hip", "left_knee"),
    "left_shin": ("left_knee", "left_ankle"),
    "right_thigh": ("right_hip", "right_knee"),
    "right_shin": ("right_knee", "right_ankle"),
    "left_upper_arm": ("left_shoulder", "left_elbow"),
    "left_forearm": ("left_elbow", "left_wrist"),
    "right_upper_arm": ("right_shoulder", "right_elbow"),
    "right_forearm": ("right_elbow", "right_wrist"),
}


def make_keypoints(offset=(0.0, 0.0), scale=1.0, conf=0.9) -> np.ndarray:
    kp = np.zeros((17, 3), np.float32)
    for name, (x, y) in STANDING.items():
        kp[KEYPOINT_INDEX[name]] = (x * scale + offset[0], y * scale + offset[1], conf)
    return kp


def pixel(img, xy) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.asarray(img)[int(round(xy[1])), int(round(xy[0]))])


def midpoint(kp: np.ndarray, a: str, b: str) -> tuple[float, float]:
    pa, pb = kp[KEYPOINT_INDEX[a], :2], kp[KEYPOINT_INDEX[b], :2]
    return float((pa[0] + pb[0]) / 2), float((pa[1] + pb[1]) / 2)


def test_coco_order_and_names():
    assert len(COCO_KEYPOINTS) == 17
    assert COCO_KEYPOINTS[0] == "nose" and COCO_KEYPOINTS[5] == "left_shoulder"
    assert COCO_KEYPOINTS[16] == "right_ankle"


def test_output_is_rgb_of_requested_size_on_black():
    img = render_pose([Person(make_keypoints())], size=(640, 480))
    assert img.mode == "RGB" and img.size == (640, 480)
    arr = np.asarray(img)
    for corner in [(0, 0), (0, 639), (479, 0), (479, 639)]:
        assert tuple(arr[corner]) == (0, 0, 0)
    # Most of the image is pure black; the skeleton covers a few percent.
    black = (arr == 0).all(axis=2).mean()
    assert 0.9 < black < 0.999


def test_every_limb_midpoint_has_its_palette_colour():
    kp = make_keypoints()
    img = render_pose(kp, size=512)
    for name, a, b, color in LIMBS:
        assert pixel(img, midpoint(kp, a, b)) == color, name


def test_rendered_colours_are_the_documented_palette():
    """Every limb, joint dot and face dot is drawn in its documented colour (literal values above, not the
    module's tables): swapped left/right limb colours or joint dots would fail here."""
    kp = make_keypoints()
    img = render_pose(kp, size=512)
    for name, (a, b) in EXPECTED_LIMB_ENDS.items():
        assert pixel(img, midpoint(kp, a, b)) == EXPECTED_LIMB_COLORS[name], name
    for name, color in list(EXPECTED_JOINT_COLORS.items()) + list(EXPECTED_FACE_COLORS.items()):
        assert pixel(img, kp[KEYPOINT_INDEX[name], :2]) == color, name
    # the left wrist dot is cool (spring green), the right one warm (orange)
    assert pixel(img, kp[KEYPOINT_INDEX["left_wrist"], :2]) == (0, 255, 128)
    assert pixel(img, kp[KEYPOINT_INDEX["right_wrist"], :2]) == (255, 128, 0)
    # without joint dots, the wrists show the ends of their forearms
    bare = render_pose(kp, size=512, draw_joints=False)
    assert pixel(bare, kp[KEYPOINT_INDEX["left_wrist"], :2]) == EXPECTED_LIMB_COLORS["left_forearm"]
    assert pixel(bare, kp[KEYPOINT_INDEX["right_wrist"], :2]) == EXPECTED_LIMB_COLORS["right_forearm"]


def test_palette_tables_are_the_documented_ones():
    assert {name: (a, b) for name, a, b, _ in LIMBS} == EXPECTED_LIMB_ENDS
    assert LIMB_COLORS == EXPECTED_LIMB_COLORS
    assert FACE_COLORS == EXPECTED_FACE_COLORS
    assert len(set(EXPECTED_FACE_COLORS.values())) == 5  # the face is five distinct dots
    for name, color in EXPECTED_LIMB_COLORS.items():  # left cool (hues 90-210), right warm (270-360 and 0-30)
        hue = colorsys.rgb_to_hsv(*(c / 255 for c in color))[0] * 360
        if name.startswith("left_"):
            assert 85 <= hue <= 215, (name, hue)
        elif name.startswith("right_"):
            assert hue >= 265 or hue <= 35, (name, hue)


def test_left_and_right_twins_differ_clearly():
    for left, right in LIMB_TWINS.items():
        hl = colorsys.rgb_to_hsv(*(c / 255 for c in LIMB_COLORS[left]))[0] * 360
        hr = colorsys.rgb_to_hsv(*(c / 255 for c in LIMB_COLORS[right]))[0] * 360
        gap = min(abs(hl - hr), 360 - abs(hl - hr))
        assert gap >= 90, (left, right, gap)
    assert LIMB_COLORS["left_upper_arm"] == (0, 255, 0)  # left arm green
    assert LIMB_COLORS["right_upper_arm"] == (255, 0, 0)  # right arm red
    assert len(set(LIMB_COLORS.values())) == len(LIMBS) == 12
    assert len(LIMB_TWINS) == 5


def test_front_and_back_views_look_different():
    kp = make_keypoints()
    front = render_pose(kp)
    # The same silhouette seen from behind: x mirrored, keypoint names unchanged.
    back_kp = kp.copy()
    back_kp[:, 0] = 512 - back_kp[:, 0]
    back = render_pose(back_kp)
    # Facing the camera, the subject's left arm is on the image's right, green; from behind the
    # image's right holds the right arm, red.
    mid = midpoint(kp, "left_shoulder", "left_elbow")
    assert pixel(front, mid) == LIMB_COLORS["left_upper_arm"]
    assert pixel(back, mid) == LIMB_COLORS["right_upper_arm"]
    # Mirroring the image with the names swapped (flip augmentation) keeps a frontal person frontal.
    flipped = render_pose(Person(kp).flipped(512))
    assert pixel(flipped, mid) == LIMB_COLORS["left_upper_arm"]
    assert pixel(flipped, (512 - mid[0], mid[1])) == LIMB_COLORS["right_upper_arm"]


def test_face_is_exactly_five_distinct_dots_without_lines():
    from skimage.measure import label

    kp = make_keypoints()
    kp[5:, 2] = 0.0  # hide the body: only the face remains
    arr = np.asarray(render_pose(kp))
    mask = (arr > 0).any(axis=2)
    labels, count = label(mask, connectivity=2, return_num=True)
    assert count == 5
    colours = {tuple(arr[labels == i][0]) for i in range(1, count + 1)}
    assert colours == set(FACE_COLORS.values()) and len(colours) == 5
    # No line between any two face keypoints: every pairwise midpoint is black.
    face = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    for i, a in enumerate(face):
        assert pixel(arr, kp[KEYPOINT_INDEX[a], :2]) == FACE_COLORS[a]
        for b in face[i + 1:]:
            assert pixel(arr, midpoint(kp, a, b)) == (0, 0, 0), (a, b)


def test_low_confidence_joints_and_their_limbs_are_not_drawn():
    kp = make_keypoints()
    kp[KEYPOINT_INDEX["left_wrist"], 2] = 0.1
    kp[KEYPOINT_INDEX["right_knee"], 2] = 0.29
    img = render_pose(kp, threshold=0.3)
    assert pixel(img, kp[KEYPOINT_INDEX["left_wrist"], :2]) == (0, 0, 0)
    assert pixel(img, midpoint(kp, "left_elbow", "left_wrist")) == (0, 0, 0)
    assert pixel(img, midpoint(kp, "right_hip", "right_knee")) == (0, 0, 0)
    assert pixel(img, midpoint(kp, "right_knee", "right_ankle")) == (0, 0, 0)
    # Neighbours that are confident are still there.
    assert pixel(img, midpoint(kp, "left_shoulder", "left_elbow")) == LIMB_COLORS["left_upper_arm"]
    assert pixel(img, midpoint(kp, "left_knee", "left_ankle")) == LIMB_COLORS["left_shin"]
    # With a lower threshold they come back.
    img_low = render_pose(kp, threshold=0.05)
    assert pixel(img_low, midpoint(kp, "left_elbow", "left_wrist")) == LIMB_COLORS["left_forearm"]


def test_all_zero_confidence_gives_a_black_image():
    kp = make_keypoints(conf=0.0)
    assert not np.asarray(render_pose(kp)).any()
    assert not np.asarray(render_pose([], size=64)).any()


def test_every_person_is_drawn():
    a = make_keypoints(scale=0.5)
    b = make_keypoints(scale=0.5, offset=(256, 256))
    img = render_pose(np.stack([a, b]))
    for kp in (a, b):
        for name, s, e, color in LIMBS:
            assert pixel(img, midpoint(kp, s, e)) == color, name


def test_input_forms_render_identically():
    kp = make_keypoints()
    ref = np.asarray(render_pose([Person(kp)]))
    assert np.array_equal(ref, np.asarray(render_pose(kp)))
    assert np.array_equal(ref, np.asarray(render_pose(kp[None])))
    assert np.array_equal(ref, np.asarray(render_pose(Person(kp))))
    assert np.array_equal(ref, np.asarray(render_pose([kp])))


def _thickness(img, x: int) -> int:
    col = np.asarray(img)[:, x]
    return int((col == LIMB_COLORS["shoulders"]).all(axis=1).sum())


def test_line_width_scales_with_image_size():
    small = render_pose(make_keypoints(scale=0.5), size=256)
    big = render_pose(make_keypoints(scale=2.0), size=1024)
    t_small, t_big = _thickness(small, 128), _thickness(big, 512)
    assert t_small >= 2 and t_big >= 3 * t_small
    assert default_line_width((512, 512)) == 5 and default_line_width((32, 32)) == 1


def test_source_size_rescales_keypoints():
    kp = make_keypoints(scale=2.0)  # detected in a 1024 x 1024 frame
    img = render_pose(kp, size=512, source_size=(1024, 1024))
    ref = render_pose(make_keypoints(), size=512)
    assert np.array_equal(np.asarray(img), np.asarray(ref))


@pytest.mark.parametrize(
    "bad",
    [np.zeros((17, 4)), np.zeros((2, 18, 3)), np.zeros(5), ["not a person"]],
)
def test_bad_inputs_raise_clear_errors(bad):
    with pytest.raises(ValueError, match=r"17"):
        render_pose(bad)


def test_bad_size_raises():
    with pytest.raises(ValueError, match="width, height"):
        render_pose(make_keypoints(), size=(0, 10))


def test_person_helpers_round_trip():
    kp = make_keypoints()
    people = people_from_array(np.stack([kp, kp + 1]), scores=[0.9, 0.8])
    assert [p.score for p in people] == [0.9, 0.8]
    arr = people_to_array(people)
    assert arr.shape == (2, 17, 3) and arr.dtype == np.float32
    assert np.array_equal(arr[0], kp)
    assert people_to_array([]).shape == (0, 17, 3)
    p = Person(kp[:, :2])  # xy only -> confidence 1
    assert np.all(p.confidence == 1.0)
    assert p["nose"][0] == 256
    box = p.box()
    assert box == (92.0, 70.0, 420.0, 470.0)
    moved = p.transformed(scale=0.5, offset=(10, 20))
    assert moved["nose"][0] == 138 and moved["nose"][1] == 66
    twice = p.flipped(512).flipped(512)
    assert np.allclose(twice.keypoints, p.keypoints)
    with pytest.raises(KeyError):
        p["neck"]


def test_import_is_light():
    code = (
        "import sys, turbonext.pose, turbonext.pose.render;"
        "bad=[m for m in ('torch','diffusers','cv2','ultralytics','mediapipe') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docs_palette_table_matches_the_code():
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "pose_palette.md"
    # tests run from the repository checkout, which has docs/: a missing table is a failure, not a skip
    assert doc.is_file(), f"{doc} is missing: the palette table must stay documented"
    rows = dict(re.findall(r"^\| (\w+) \|.*`#([0-9a-f]{6})`", doc.read_text(), flags=re.M))
    assert set(rows) == set(EXPECTED_LIMB_COLORS) | set(EXPECTED_FACE_COLORS)
    for name, color in list(LIMB_COLORS.items()) + list(FACE_COLORS.items()):
        assert rows[name] == "%02x%02x%02x" % color, name
    for name, color in list(EXPECTED_LIMB_COLORS.items()) + list(EXPECTED_FACE_COLORS.items()):
        assert rows[name] == "%02x%02x%02x" % color, name
