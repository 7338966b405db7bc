"""Pose detectors, segmenters, tracking and smoothing, offline.

mediapipe runs for real (its wheel ships the models). ultralytics runs for real where it is
installed and importable (a YOLO model built from its yaml: random weights, no download);
the YOLO backend's own parsing is also tested with stand-in model objects so it is covered
everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from turbonext.pose import Person
from turbonext.pose import detectors as det_mod
from turbonext.pose.detectors import (
    MEDIAPIPE_TO_COCO,
    PoseDetector,
    YoloPoseDetector,
    get_detector,
    people_from_yolo_result,
)
from turbonext.pose.keypoints import KEYPOINT_INDEX
from turbonext.pose.segmentation import apply_mask, get_segmenter, select_mask
from turbonext.pose.smoothing import OneEuroFilter, PoseSmoother, SmoothedPoseDetector
from turbonext.pose.tracking import MainPersonTracker, box_iou
from turbonext.utils.images import to_rgb_array


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("YOLO_OFFLINE", "1")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


# ------------------------------------------------------------------------------- image inputs
def test_image_inputs_are_checked():
    rgb = np.zeros((8, 9, 3), np.uint8)
    assert to_rgb_array(rgb).shape == (8, 9, 3)
    assert to_rgb_array(Image.fromarray(rgb)).shape == (8, 9, 3)
    with pytest.raises(ValueError, match="convert"):
        to_rgb_array(Image.new("RGBA", (4, 4)))
    with pytest.raises(ValueError, match="uint8"):
        to_rgb_array(rgb.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        to_rgb_array(np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match="PIL"):
        to_rgb_array("image.png")


# ---------------------------------------------------------------------------------- mediapipe
def test_mediapipe_to_coco_mapping_is_complete():
    assert len(MEDIAPIPE_TO_COCO) == 17 and len(set(MEDIAPIPE_TO_COCO)) == 17
    assert MEDIAPIPE_TO_COCO[KEYPOINT_INDEX["left_hip"]] == 23  # mediapipe LEFT_HIP
    assert MEDIAPIPE_TO_COCO[KEYPOINT_INDEX["right_ankle"]] == 28  # mediapipe RIGHT_ANKLE


def test_mediapipe_finds_the_astronaut(astronaut):
    pytest.importorskip("mediapipe")
    with get_detector("mediapipe") as detector:
        people = detector.detect(astronaut)
    assert len(people) == 1
    p = people[0]
    nose, ls, rs, lh, rh = (p[n] for n in ("nose", "left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    assert nose[2] > 0.8 and ls[2] > 0.8 and rs[2] > 0.8
    # nose above shoulders above hips (image y grows downwards); nose between the shoulders.
    assert nose[1] < min(ls[1], rs[1])
    assert max(ls[1], rs[1]) < min(lh[1], rh[1])
    assert min(ls[0], rs[0]) < nose[0] < max(ls[0], rs[0])
    # The astronaut faces the camera: her left shoulder is on the image's right.
    assert ls[0] > rs[0]
    # The face is in the upper part of the picture, inside it.
    assert 150 < nose[0] < 300 and 60 < nose[1] < 200


def test_mediapipe_finds_nobody_in_a_black_image():
    pytest.importorskip("mediapipe")
    with get_detector("mediapipe") as detector:
        assert detector.detect(np.zeros((256, 256, 3), np.uint8)) == []


def test_auto_falls_back_to_mediapipe_offline(monkeypatch, tmp_path):
    pytest.importorskip("mediapipe")
    monkeypatch.chdir(tmp_path)  # no yolo26n-pose.pt here
    detector = get_detector("auto")
    try:
        assert detector.name == "mediapipe"
    finally:
        detector.close()
    segmenter = get_segmenter("auto")
    assert segmenter.name == "mediapipe"
    segmenter.close()


def test_auto_without_any_backend_says_what_to_install(monkeypatch, tmp_path):
    def missing(*_args, **_kwargs):
        raise ImportError("not installed")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(det_mod, "import_ultralytics", missing)
    monkeypatch.setattr(det_mod, "import_mediapipe_solutions", missing)
    with pytest.raises(ImportError, match="pip install"):
        get_detector("auto")


def test_unknown_detector_name():
    with pytest.raises(ValueError, match="'auto', 'yolo', 'mediapipe'"):
        get_detector("openpose")
    with pytest.raises(ValueError, match="'auto', 'yolo', 'mediapipe'"):
        get_segmenter("sam")


def test_mediapipe_segmenter_masks_the_astronaut(astronaut):
    pytest.importorskip("mediapipe")
    with get_segmenter("mediapipe") as segmenter:
        mask = segmenter.segment(Image.fromarray(astronaut))
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert mask[128, 223] > 0.9  # face
    assert mask[300, 250] > 0.9  # chest
    assert mask[10, 10] < 0.1 and mask[10, 500] < 0.1  # background at the top corners
    assert 0.25 < (mask > 0.5).mean() < 0.8
    out = apply_mask(astronaut, mask)
    assert (out[10, 10] == 0).all() and (out[128, 223] == astronaut[128, 223]).all()


# ---------------------------------------------------------------------------------- YOLO path
class _Keypoints:
    def __init__(self, xy, conf):
        self.xy, self.conf = xy, conf


class _Boxes:
    def __init__(self, xyxy, conf):
        self.xyxy, self.conf = xyxy, conf


class _Result:
    def __init__(self, keypoints, boxes):
        self.keypoints, self.boxes = keypoints, boxes


class FakeYolo:
    """Stands in for ultralytics.YOLO: records its input, returns fixed results."""

    task = "pose"

    def __init__(self, result):
        self.result, self.calls = result, []

    def predict(self, source, **kwargs):
        self.calls.append((source, kwargs))
        return [self.result]


def _two_people_result():
    xy = np.random.default_rng(0).uniform(0, 100, (2, 17, 2)).astype(np.float32)
    conf = np.full((2, 17), 0.9, np.float32)
    conf[1, 3] = 0.1
    boxes = _Boxes(np.array([[0, 0, 50, 90], [40, 5, 99, 99]], np.float32), np.array([0.95, 0.6], np.float32))
    return _Result(_Keypoints(xy, conf), boxes), xy, conf


def test_yolo_detector_parses_results_and_passes_bgr():
    result, xy, conf = _two_people_result()
    fake = FakeYolo(result)
    detector = YoloPoseDetector(model=fake, device="cpu", conf=0.3)
    image = np.zeros((10, 12, 3), np.uint8)
    image[..., 0] = 255  # red in RGB
    people = detector.detect(image)
    source, kwargs = fake.calls[0]
    assert source[0, 0].tolist() == [0, 0, 255]  # ultralytics reads arrays as BGR
    assert kwargs["device"] == "cpu" and kwargs["conf"] == 0.3 and kwargs["verbose"] is False
    assert len(people) == 2
    assert np.allclose(people[0].xy, xy[0]) and np.allclose(people[1].confidence, conf[1])
    assert people[0].bbox == (0, 0, 50, 90) and people[1].score == pytest.approx(0.6)


def test_yolo_result_without_keypoints_is_rejected():
    with pytest.raises(ValueError, match="pose"):
        people_from_yolo_result(_Result(None, None))
    with pytest.raises(ValueError, match="pose weights"):
        YoloPoseDetector(model=type("Det", (), {"task": "detect"})())


def test_yolo_weights_missing_offline(monkeypatch, tmp_path):
    pytest.importorskip("ultralytics")
    monkeypatch.chdir(tmp_path)
    ok, reason = det_mod.yolo_weights_usable("yolo26n-pose.pt")
    assert not ok and "HF_HUB_OFFLINE" in reason


def test_yolo_backend_with_a_model_built_from_yaml(astronaut):
    """The real ultralytics code path: YOLO pose built from its yaml (random weights, offline)."""
    pytest.importorskip("ultralytics")
    import torch
    from ultralytics.engine.results import Results

    detector = get_detector("yolo", weights="yolo26n-pose.yaml", device="cpu", imgsz=160)
    assert isinstance(detector, YoloPoseDetector)
    people = detector.detect(astronaut)  # random weights: any number of people, but valid ones
    for p in people:
        assert p.keypoints.shape == (17, 3) and p.bbox is not None
    # Parse a real ultralytics Results object holding known values.
    kp = torch.rand(2, 17, 3) * torch.tensor([512.0, 512.0, 1.0])
    boxes = torch.tensor([[10.0, 20, 200, 400, 0.9, 0], [250, 30, 500, 500, 0.7, 0]])
    result = Results(astronaut[:, :, ::-1], path="a.png", names={0: "person"}, boxes=boxes, keypoints=kp)
    parsed = people_from_yolo_result(result)
    assert len(parsed) == 2
    assert np.allclose(parsed[1].keypoints, kp[1].numpy(), atol=1e-4)
    assert parsed[0].bbox == pytest.approx((10, 20, 200, 400)) and parsed[1].score == pytest.approx(0.7)


def test_yolo_segmenter_with_a_model_built_from_yaml(astronaut):
    """The real ultralytics segmentation path: YOLO-seg from its yaml (random weights, offline)."""
    pytest.importorskip("ultralytics")
    from turbonext.pose.segmentation import YoloPersonSegmenter

    segmenter = get_segmenter("yolo", weights="yolo11n-seg.yaml", device="cpu", imgsz=160, conf=0.0)
    assert isinstance(segmenter, YoloPersonSegmenter)
    mask = segmenter.segment(astronaut, box=(100, 50, 400, 512))
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    with pytest.raises(ValueError, match="segmentation weights"):
        YoloPersonSegmenter(model=type("Pose", (), {"task": "pose"})())


# --------------------------------------------------------------------------- tracking, smoothing
def _person(x0, y0, x1, y1):
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = np.linspace(x0, x1, 17)
    kp[:, 1] = np.linspace(y0, y1, 17)
    kp[:, 2] = 1.0
    return Person(kp)


def test_main_person_tracker_follows_the_first_largest_person():
    tracker = MainPersonTracker()
    big, small = _person(0, 0, 100, 200), _person(300, 0, 340, 80)
    assert tracker([small, big]) is big
    # The followed person shrinks and another grows: we keep following by overlap.
    followed, grown = _person(5, 0, 80, 150), _person(200, 0, 400, 400)
    assert tracker([grown, followed]) is followed
    tracker.reset()
    assert tracker([grown, followed]) is grown
    assert tracker([]) is None
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_one_euro_filter_removes_jitter_but_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.05, frequency=30)
    still = np.array([f(np.array([100.0]) + rng.normal(0, 2, 1))[0] for _ in range(120)])
    assert still[30:].std() < 0.5 * 2  # much steadier than the raw noise (std 2)
    f.reset()
    ramp = np.array([f(np.array([t * 10.0]))[0] for t in range(60)])  # 300 px/s
    assert abs(ramp[-1] - 590.0) < 15  # little lag on fast motion
    f.reset()
    out = f(np.array([1.0, 2.0]), valid=np.array([True, False]))
    out = f(np.array([1.0, 50.0]), valid=np.array([True, True]))
    assert out[1] == 50.0  # a keypoint that reappears starts fresh, not dragged from its old value
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0)


def test_pose_smoother_keeps_people_apart():
    smoother = PoseSmoother(min_cutoff=0.5)
    rng = np.random.default_rng(1)
    a0, b0 = _person(0, 0, 100, 200), _person(300, 0, 400, 200)
    for _ in range(20):
        a = Person(a0.keypoints + np.r_[rng.normal(0, 3, 2), 0].astype(np.float32))
        b = Person(b0.keypoints + np.r_[rng.normal(0, 3, 2), 0].astype(np.float32))
        out = smoother([b, a])  # order changes do not swap tracks
    assert smoother.num_tracks == 2
    assert np.abs(out[0].xy - b0.xy).max() < 4 and np.abs(out[1].xy - a0.xy).max() < 4


def test_smoothed_detector_wraps_any_detector():
    class Fixed(PoseDetector):
        name = "fixed"

        def __init__(self):
            self.x = 0.0

        def detect(self, image):
            self.x += 1.0
            return [_person(self.x, 0, self.x + 100, 200)]

    detector = get_detector(Fixed(), smoothing=True)
    assert isinstance(detector, SmoothedPoseDetector) and detector.name == "fixed+one-euro"
    first = detector.detect(np.zeros((4, 4, 3), np.uint8))
    second = detector.detect(np.zeros((4, 4, 3), np.uint8))
    assert first[0].xy[0, 0] == 1.0 and 1.0 < second[0].xy[0, 0] < 2.0


def test_select_mask_prefers_the_person_in_the_box():
    masks = np.zeros((2, 10, 10), np.float32)
    masks[0, :, :5] = 1
    masks[1, :, 5:] = 1
    assert select_mask(masks, (6, 0, 10, 10))[0, 9] == 1 and select_mask(masks, (6, 0, 10, 10))[0, 0] == 0
    assert select_mask(masks, None).min() == 1


def test_resetting_a_smoothed_detector_resets_the_detector_it_wraps():
    from turbonext.pose.backends import PoseDetector
    from turbonext.pose.smoothing import SmoothedPoseDetector

    class Tracking(PoseDetector):
        resets = 0

        def detect(self, image):
            return []

        def reset(self):
            Tracking.resets += 1

    SmoothedPoseDetector(Tracking()).reset()
    assert Tracking.resets == 1
