"""prepare-data end to end on small videos made here: scenes, layout, pairs, black background,
dropped short scenes, frames without a person, resumability, unreadable videos, the feature cache,
and one run with the real mediapipe backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from turbonext.commands.prepare_data import cli_main
from turbonext.data.crop import crop_square, keypoints_to_crop, square_crop_box
from turbonext.data.prepare import prepare_dataset
from turbonext.data.scenes import detect_cuts, scene_ranges
from turbonext.data.video_io import iter_frames, list_videos, write_video
from turbonext.pose import Person
from turbonext.pose.detectors import PoseDetector
from turbonext.pose.segmentation import PersonSegmenter


H, W = 120, 160
FIG_W, FIG_H = 24, 64
BLUE, ORANGE, GREEN = (30, 60, 200), (230, 120, 20), (40, 180, 60)


def draw_frame(background, x: int | None, y: int = 30) -> np.ndarray:
    """A white "person" (head + body) at (x, y) on a flat coloured background; x=None: nobody."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:] = background
    if x is not None:
        frame[y + 14 : y + FIG_H, x : x + FIG_W] = 255  # body
        frame[y : y + 14, x + 6 : x + FIG_W - 6] = 255  # head
    return frame


def white_mask(frame: np.ndarray) -> np.ndarray:
    return (frame.astype(np.int16).min(axis=2) > 190).astype(np.float32)


class WhiteFigureDetector(PoseDetector):
    """Test double: the person is the white blob; keypoints laid out in its box."""

    name = "white-figure"

    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        ys, xs = np.nonzero(white_mask(np.asarray(image)))
        if len(xs) < 30:
            return []
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        w, h = x1 - x0, y1 - y0
        rel = {  # (x, y) as fractions of the box, a person facing the camera
            0: (0.5, 0.1), 1: (0.6, 0.07), 2: (0.4, 0.07), 3: (0.7, 0.1), 4: (0.3, 0.1),
            5: (0.85, 0.3), 6: (0.15, 0.3), 7: (0.95, 0.45), 8: (0.05, 0.45), 9: (0.95, 0.6), 10: (0.05, 0.6),
            11: (0.7, 0.6), 12: (0.3, 0.6), 13: (0.7, 0.8), 14: (0.3, 0.8), 15: (0.7, 0.98), 16: (0.3, 0.98),
        }
        kp = np.array([[x0 + fx * w, y0 + fy * h, 0.9] for fx, fy in (rel[i] for i in range(17))], np.float32)
        return [Person(kp, 0.9, (float(x0), float(y0), float(x1), float(y1)))]


class WhiteFigureSegmenter(PersonSegmenter):
    name = "white-figure"

    def segment(self, image, box=None):
        return white_mask(np.asarray(image))


def make_videos(folder: Path) -> Path:
    """One good video (12 frames blue, hard cut, 12 frames orange of which 3 without the figure,
    hard cut, 4 frames green), one corrupt file, one non-video file."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = [draw_frame(BLUE, 4 + 5 * i) for i in range(12)]  # starts at the left edge: crop pads
    frames += [draw_frame(ORANGE, 120 - 4 * i) if i not in (5, 6, 7) else draw_frame(ORANGE, None) for i in range(12)]
    frames += [draw_frame(GREEN, 60) for _ in range(4)]
    write_video(folder / "dance.mp4", frames, fps=10)
    (folder / "broken.mp4").write_bytes(b"this is not a video" * 50)
    (folder / "notes.txt").write_text("ignored")
    return folder


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return make_videos(tmp_path_factory.mktemp("videos"))


def run(videos, out, cache_dir, detector=None, **kwargs):
    detector = detector or WhiteFigureDetector()
    kwargs = {"size": 64, "min_scene_frames": 5, "progress": False, "cache_dir": cache_dir} | kwargs
    return prepare_dataset(videos, out, detector=detector, segmenter=WhiteFigureSegmenter(), **kwargs), detector


# ------------------------------------------------------------------------------------- pieces
def test_video_reading_and_cuts(videos):
    info, frames = iter_frames(videos / "dance.mp4")
    frames = [f for _, _, f in frames]
    assert (info.width, info.height, len(frames)) == (W, H, 28)
    cuts = detect_cuts(frames)
    assert cuts == [12, 24]
    assert scene_ranges(28, cuts) == [(0, 12), (12, 24), (24, 28)]
    _, half = iter_frames(videos / "dance.mp4", fps=5)
    assert len(list(half)) == 14
    assert list(list_videos(videos)) == ["broken", "dance"]
    with pytest.raises(ValueError, match="cannot read"):
        iter_frames(videos / "broken.mp4")


def test_square_crop_pads_black_and_never_stretches():
    image = np.full((40, 100, 3), 200, np.uint8)
    crop = square_crop_box((0, 0, 20, 40), margin=0.25)  # side 60, centred on (10, 20)
    assert crop == (-20.0, -10.0, 60.0)
    out = crop_square(image, crop, 30)
    assert out.shape == (30, 30, 3)
    assert (out[:, :8] == 0).all() and (out[:4] == 0).all()  # outside the frame: black
    assert (out[10:20, 12:28] == 200).all()
    p = Person(np.tile(np.array([[10.0, 20.0, 1.0]], np.float32), (17, 1)))
    assert np.allclose(keypoints_to_crop(p, crop, 30).xy[0], (15, 15))
    with pytest.raises(ValueError, match="margin"):
        square_crop_box((0, 0, 1, 1), margin=-1)


# ----------------------------------------------------------------------------------- end to end
def test_prepare_end_to_end(videos, tmp_path):
    out = tmp_path / "dataset"
    summary, detector = run(videos, out, tmp_path / "cache")
    assert summary["videos_found"] == 2 and summary["videos_done"] == 1 and summary["videos_failed"] == 1
    assert "broken.mp4" in summary["failed"][0]["video"] and "cannot read" in summary["failed"][0]["error"]
    assert summary["frames_read"] == 28
    assert summary["scenes_written"] == 2 and summary["scenes_dropped_short"] == 1
    assert summary["frames_written"] == 12 + 9 and summary["frames_no_person"] == 3
    assert json.loads((out / "summary.json").read_text())["frames_written"] == 21
    assert detector.calls == 28

    scenes = sorted(p.name for p in (out / "dance").iterdir() if p.is_dir())
    assert scenes == ["scene_001", "scene_002"]  # scene_003 (4 frames) was dropped
    for scene, n in (("scene_001", 12), ("scene_002", 9)):
        images = sorted(p.name for p in (out / "dance" / scene / "images").iterdir())
        poses = sorted(p.name for p in (out / "dance" / scene / "poses").iterdir())
        assert images == poses == [f"{i:05d}.jpg" for i in range(1, n + 1)]
        meta = json.loads((out / "dance" / scene / "scene.json").read_text())
        assert meta["num_frames"] == n and len(meta["frames"]) == n
    assert [f["sample"] for f in json.loads((out / "dance/scene_002/scene.json").read_text())["frames"]] == [
        12, 13, 14, 15, 16, 20, 21, 22, 23]

    for path in sorted((out / "dance").glob("scene_*/images/*.jpg")):
        img = np.asarray(Image.open(path))
        pose = np.asarray(Image.open(str(path).replace("/images/", "/poses/")))
        assert img.shape == pose.shape == (64, 64, 3)
        # The background is gone: no blue or orange anywhere; only the white figure on black.
        spread = img.astype(int).max(axis=2) - img.astype(int).min(axis=2)
        assert spread.max() < 60, path
        white = img.min(axis=2) > 128
        black = img.max(axis=2) < 16
        assert (white | black).mean() > 0.97 and black.mean() > 0.5
        assert img[0, 0].max() < 16 and img[-1, -1].max() < 16
        # The figure keeps its proportions (square crop, uniform resize): height / width ~ 64 / 24.
        ys, xs = np.nonzero(white)
        ratio = (ys.max() - ys.min() + 1) / (xs.max() - xs.min() + 1)
        assert 2.2 < ratio < 3.2, (path, ratio)
        # The pose map is drawn on black: a yellow shoulder line, the subject's right arm (red/orange)
        # on the image's left of the figure and the left arm (greens) on its right.
        assert (pose.max(axis=2) < 16).mean() > 0.7
        r, g, b = (pose[..., i].astype(int) for i in range(3))
        assert ((r > 120) & (g > 120) & (b < 100)).any(), path
        cx = (xs.min() + xs.max()) / 2
        cols = np.arange(64)[None, :].repeat(64, 0)
        reddish, greenish = (r > g + 60) & (r > b + 60), (g > r + 60)
        assert reddish[cols < cx].sum() > reddish[cols > cx].sum(), path
        assert greenish[cols > cx].sum() > greenish[cols < cx].sum(), path

    # The first frames of scene 1 hug the left edge: their crop reaches outside the frame -> black band.
    first = np.asarray(Image.open(out / "dance/scene_001/images/00001.jpg"))
    assert first[:, :5].max() < 16


def test_rerun_resumes_finished_videos_and_scenes(videos, tmp_path):
    out = tmp_path / "dataset"
    run(videos, out, tmp_path / "cache")
    stamp = (out / "dance/scene_001/images/00001.jpg").stat().st_mtime_ns
    summary, detector = run(videos, out, tmp_path / "cache")
    assert summary["videos_resumed"] == 1 and summary["frames_written"] == 21 and detector.calls == 0
    assert summary["videos_failed"] == 1  # still reported, still not fatal
    # Interrupted run: the video marker and one scene are missing, a partial folder is left over.
    (out / "dance/video.json").unlink()
    for f in sorted((out / "dance/scene_002").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    (out / "dance/scene_002").rmdir()
    (out / "dance/scene_002.partial/images").mkdir(parents=True)
    summary, detector = run(videos, out, tmp_path / "cache", use_cache=False)
    assert summary["scenes_resumed"] == 1 and summary["scenes_written"] == 2 and summary["frames_written"] == 21
    assert detector.calls == 12 + 4  # scene_002 and the short scene_003 again, not scene_001
    assert (out / "dance/scene_001/images/00001.jpg").stat().st_mtime_ns == stamp
    assert len(list((out / "dance/scene_002/images").iterdir())) == 9
    assert not (out / "dance/scene_002.partial").exists()
    with pytest.raises(ValueError, match="other settings"):
        run(videos, out, tmp_path / "cache", size=96)


def test_feature_cache_hit_skips_the_detector_and_gives_identical_output(videos, tmp_path):
    cold, det_cold = run(videos, tmp_path / "a", tmp_path / "cache")
    assert det_cold.calls == 28 and cold["scenes_from_cache"] == 0 and cold["cache"]["misses"] == 3
    hot, det_hot = run(videos, tmp_path / "b", tmp_path / "cache")
    assert det_hot.calls == 0 and hot["scenes_from_cache"] == 3 and hot["cache"]["hits"] == 3
    for path in sorted((tmp_path / "a/dance").rglob("*.jpg")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    # A setting that changes the analysis is another key: a miss.
    changed, det_changed = run(videos, tmp_path / "c", tmp_path / "cache", margin=0.3)
    assert det_changed.calls == 28 and changed["scenes_from_cache"] == 0
    # JPEG quality does not change the analysis: still a hit.
    _, det_q = run(videos, tmp_path / "d", tmp_path / "cache", jpeg_quality=80)
    assert det_q.calls == 0
    # --no-cache: nothing read.
    _, det_off = run(videos, tmp_path / "e", tmp_path / "cache", use_cache=False)
    assert det_off.calls == 28


# ------------------------------------------------------------------------------ real mediapipe
@pytest.fixture(scope="module")
def astronaut_videos(tmp_path_factory) -> Path:
    skimage_data = pytest.importorskip("skimage.data")
    img = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((192, 192)))
    padded = np.pad(img, ((0, 0), (16, 16), (0, 0)))
    frames = [padded[:, 4 * i : 4 * i + 192] for i in range(6)]  # the camera pans a little
    folder = tmp_path_factory.mktemp("astronaut")
    write_video(folder / "astronaut.mp4", frames, fps=10)
    return folder


def test_cli_with_real_mediapipe(astronaut_videos, tmp_path, capsys, monkeypatch):
    pytest.importorskip("mediapipe")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "dataset"
    code = cli_main([str(astronaut_videos), str(out), "--size", "64", "--detector", "mediapipe", "--segmenter",
                     "mediapipe", "--min-scene-frames", "3", "--no-cache", "--no-progress"])
    assert code == 0
    assert "prepared 1 videos" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenes_written"] == 1 and summary["frames_written"] == 6 and summary["frames_no_person"] == 0
    assert summary["settings"]["detector"].startswith("mediapipe-pose")
    img = np.asarray(Image.open(out / "astronaut/scene_001/images/00001.jpg"))
    pose = np.asarray(Image.open(out / "astronaut/scene_001/poses/00001.jpg"))
    assert img.shape == pose.shape == (64, 64, 3)
    assert img[:3, :3].max() < 16 and img[:3, -3:].max() < 16  # the background (top corners) is black
    assert img[20:40, 20:44].mean() > 40  # the person is there
    assert (pose.max(axis=2) > 100).sum() > 30  # a skeleton is drawn


def test_cli_benchmark_cache(astronaut_videos, tmp_path, capsys):
    pytest.importorskip("mediapipe")
    code = cli_main([str(astronaut_videos), str(tmp_path / "unused"), "--size", "64", "--detector", "mediapipe",
                     "--segmenter", "mediapipe", "--min-scene-frames", "3", "--benchmark-cache", "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "cold" in text and "hot" in text and "1 scenes from cache" in text
    assert not (tmp_path / "unused").exists()


def test_cli_via_dispatcher_help(capsys):
    from turbonext.commands.main import main

    with pytest.raises(SystemExit) as exc:
        main(["prepare-data", "--help"])
    assert exc.value.code == 0
    assert "--benchmark-cache" in capsys.readouterr().out


def test_missing_videos_dir(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        prepare_dataset(tmp_path / "nope", tmp_path / "out", detector=WhiteFigureDetector(), segmenter=WhiteFigureSegmenter())


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, turbonext.data, turbonext.data.prepare;"
        "bad=[m for m in ('torch','diffusers','ultralytics','mediapipe','cv2') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
