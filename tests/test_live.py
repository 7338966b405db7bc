"""LiveSession (webcam logic) and render_clip (upload job) on the tiny pipeline with a fake detector."""

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from turbonext.jobs.clip import render_clip
from turbonext.jobs.live import LiveSession
from turbonext.jobs.reference import prepare_reference
from turbonext.pose.detectors import PoseDetector
from turbonext.pose.keypoints import Person
from turbonext.streaming.live_poses import FollowingSquare


def standing_keypoints(cx: float, top: float, height: float) -> np.ndarray:
    """A plausible standing person (COCO-17, x px, y px, conf) centred at ``cx``."""
    rel = np.array([  # (dx, dy) in units of height
        (0, 0.05), (-0.02, 0.03), (0.02, 0.03), (-0.04, 0.04), (0.04, 0.04),
        (-0.1, 0.18), (0.1, 0.18), (-0.14, 0.35), (0.14, 0.35), (-0.15, 0.5), (0.15, 0.5),
        (-0.07, 0.52), (0.07, 0.52), (-0.07, 0.75), (0.07, 0.75), (-0.07, 0.98), (0.07, 0.98),
    ])
    kp = np.ones((17, 3), np.float32)
    kp[:, 0] = cx + rel[:, 0] * height
    kp[:, 1] = top + rel[:, 1] * height
    return kp


class FakeDetector(PoseDetector):
    """One standing person in the middle of any image that is not all black; nobody in black images."""

    name = "fake"

    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        arr = np.asarray(image)
        if arr.max() == 0:
            return []
        h, w = arr.shape[:2]
        return [Person(standing_keypoints(w / 2, 0.1 * h, 0.8 * h))]


class SlowSession:
    """Stands in for a StreamSession: each step takes ``delay`` s and echoes the frame."""

    def __init__(self, delay):
        self.delay, self.seen = delay, []

    def step(self, frame):
        time.sleep(self.delay)
        self.seen.append(frame)
        return [frame]


def webcam_frame(seed=0, h=48, w=64):
    rng = np.random.default_rng(seed)
    return rng.integers(30, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def pipe(tiny_pipe_factory):
    return tiny_pipe_factory()


def wait_for_output(live, frames=60, pause=0.02):
    out = None
    for i in range(frames):
        out = live.process(webcam_frame(i))
        if out is not None:
            return out, i
        time.sleep(pause)
    return out, frames


def test_frames_flow_through_the_tiny_pipeline(pipe):
    live = LiveSession(pipe, FakeDetector(), num_inference_steps=2, window=4, frames_per_level=1)
    prepared = live.set_reference(webcam_frame(99, 80, 60))
    assert prepared.person_found and prepared.image.shape == (64, 64, 3)
    try:
        out, _ = wait_for_output(live, frames=150)
        assert out is not None and out.shape == (64, 64, 3) and out.dtype == np.uint8
        assert live.pose_map.shape == (64, 64, 3) and live.pose_map.max() > 0  # the skeleton was drawn
        stats = live.stats()
        assert stats["frames_in"] >= 1 and stats["frames_out"] >= 1
        assert stats["p50_latency_ms"] >= stats["p50_model_latency_ms"] > 0  # webcam frame in -> out covers the model
        assert "shown:" in live.stats_markdown() and "UNet" not in live.stats_markdown()
    finally:
        live.close()


def test_process_never_blocks_and_latest_frame_wins(pipe):
    live = LiveSession(pipe, FakeDetector(), num_inference_steps=2, window=4, frames_per_level=1)
    live.set_reference(webcam_frame(1))
    slow = SlowSession(0.2)
    live.runner.close()
    from turbonext.streaming.runner import LatestFrameRunner

    live.runner = LatestFrameRunner(slow, prepare=live._prepare)  # as set_reference builds it, a slow model
    try:
        start = time.perf_counter()
        for i in range(40):
            live.process(webcam_frame(i))
        assert time.perf_counter() - start < 1.5  # 40 frames, never waited on 0.2 s steps
        time.sleep(0.5)
        last = live.process(webcam_frame(1000))
        assert live.runner.dropped >= 30  # stale frames replaced, not queued
        assert len(slow.seen) <= 6 and len(live.runner.outputs) <= live.runner.outputs.maxlen
        time.sleep(0.45)
        newest = live.process(webcam_frame(1001))
        assert newest is not None and (last is None or newest is not last or len(slow.seen) > 1)
    finally:
        live.close()


def test_reference_errors_are_clear(pipe, tmp_path):
    live = LiveSession(pipe, FakeDetector())
    with pytest.raises(ValueError, match="no person was found"):
        live.set_reference(np.zeros((64, 64, 3), np.uint8))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read the reference image"):
        live.set_reference(str(bad))
    with pytest.raises(ValueError, match="mode 'CMYK'"):
        live.set_reference(Image.new("CMYK", (32, 32)))
    with pytest.raises(ValueError, match="uint8"):
        live.set_reference(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="no reference set"):
        live.process(webcam_frame())
    prepared = prepare_reference(np.zeros((40, 80, 3), np.uint8), FakeDetector(), 64, require_person=False)
    assert not prepared.person_found and "centre square crop" in prepared.notice


def test_reference_is_cropped_square_around_the_person_on_black():
    ref = np.full((300, 100, 3), 200, np.uint8)  # narrow photo: the square around the person is wider
    prepared = prepare_reference(ref, FakeDetector(), 64)
    assert prepared.image.shape == (64, 64, 3)
    assert prepared.image[32, 32, 0] == 200 and prepared.image[:, 0].max() == 0  # person kept, sides black


def test_crop_follows_slowly():
    framer = FollowingSquare(follow=0.5)
    a = framer.update(Person(standing_keypoints(50, 10, 80)).box())
    b = framer.update(Person(standing_keypoints(150, 10, 80)).box())
    assert a[0] < b[0] < a[0] + 100  # moved half way, not all the way
    assert framer.update(None) == b
    with pytest.raises(ValueError, match="follow"):
        FollowingSquare(follow=2)


def test_two_sessions_share_one_pipeline(pipe):
    """Each user's stream renders that user's photo, whoever set a photo last (pixels: test_streaming)."""
    a, b = (LiveSession(pipe, FakeDetector(), num_inference_steps=2, window=4, frames_per_level=1) for _ in range(2))
    a.set_reference(webcam_frame(5))
    b.set_reference(webcam_frame(6))  # the pipeline's current reference is now b's
    try:
        stream_a, stream_b = a.runner.session.session, b.runner.session.session
        assert stream_a.reference.key != stream_b.reference.key
        assert stream_b.reference is pipe.reference_state.cache
        solo = pipe.set_reference(a.reference.image, height=a.size, width=a.size)
        assert stream_a.reference.key == solo.key  # a still renders a's photo
        assert wait_for_output(a, frames=150)[0] is not None
    finally:
        a.close()
        b.close()


def test_render_clip_writes_a_video_and_reports_progress(pipe, tmp_path):
    from conftest import make_pose_frames

    calls = []
    result = render_clip(pipe, webcam_frame(3), make_pose_frames(3), detector=FakeDetector(), num_inference_steps=2,
                         max_frames=3, out_dir=tmp_path, progress=lambda f, desc=None: calls.append((f, desc)))
    assert result.video.is_file() and result.video.stat().st_size > 0 and result.num_frames == 3
    assert calls[0][0] == 0.0 and calls[-1][0] == 1.0 and all(x[0] <= y[0] for x, y in zip(calls, calls[1:]))
    with pytest.raises(ValueError, match="steps must be"):
        render_clip(pipe, webcam_frame(3), make_pose_frames(2), num_inference_steps=0)
    with pytest.raises(ValueError, match="max frames"):
        render_clip(pipe, webcam_frame(3), make_pose_frames(2), max_frames=10_000)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a video"):
        render_clip(pipe, webcam_frame(3), str(tmp_path / "notes.txt"), detector=FakeDetector())


def test_live_benchmark_replays_a_webcam_at_its_frame_rate(pipe):
    from turbonext.benchmarks.live import WEBCAM_SIZE, markdown_rows, run_live_benchmark, webcam_frames

    reference, frames = webcam_frames(64, num_frames=4)
    assert reference.shape == (64, 64, 3) and frames[0].shape == (*WEBCAM_SIZE, 3) and len(frames) == 6
    detector = FakeDetector()
    row = run_live_benchmark(pipe, detector, seconds=1.5, input_fps=20, warmup_s=0.3, window=4, frames_per_level=1,
                             num_inference_steps=2)
    assert row["name"] == "live uniform window=4 frames_per_level=1 steps=2 compile=None" and row["detector"] == "fake"
    assert 5 < row["input_fps"] <= 21 and row["frames_in"] >= 8
    assert 0 < row["detections"] <= row["frames_in"] - row["dropped"] + 1  # frames replaced before use: never detected
    assert row["rendered_fps"] > 0 and row["p50_latency_ms"] >= row["p50_model_latency_ms"] > 0 and row["detect_ms"] >= 0
    assert 0 <= row["dropped"] < row["frames_in"]
    table = markdown_rows([row])
    assert table[2].startswith("| live uniform window=4") and len(table) == 3


def test_frame_files_are_new_complete_files_never_rewritten(tmp_path):
    """The fix for the content-length races: every picture gets a name of its own, written under a temporary
    name and renamed into place; the same picture twice is two files; only the newest ``keep`` stay."""
    from turbonext.jobs.live import FrameFiles

    files = FrameFiles(tmp_path, keep=3)
    frame = webcam_frame(1)
    paths = [files.write(frame) for _ in range(5)]
    assert len(set(paths)) == 5 and all(Path(p).parent == files.folder for p in paths)
    assert [Path(p).exists() for p in paths] == [False, False, True, True, True]
    with Image.open(paths[-1]) as im:
        im.load()  # complete: decodes to the end
        assert im.size == (64, 48)
    assert not list(files.folder.glob(".*"))  # no half-written staging file left behind
    folder = files.folder
    files.close()
    assert not folder.exists()


def test_shown_rate_has_no_start_up_burst():
    from turbonext.jobs.live import ShownRate

    rate = ShownRate(window=5.0, min_seconds=3.0)
    for i in range(4):  # the first burst of 4 frames, shown one per webcam tick (12.5 per second)
        rate.add(1.0 + 0.08 * i)
    assert rate.rate(1.3) is None and rate.rate(3.9) is None  # not "12.5 frames/s"
    for t in np.arange(1.5, 9.0, 0.25):  # then 4 frames per second
        rate.add(float(t))
    assert rate.rate(9.0) == pytest.approx(4.0, abs=0.3)


def test_status_line_in_words_and_no_person_holds_the_pose(pipe):
    live = LiveSession(pipe, FakeDetector(), num_inference_steps=2, window=4, frames_per_level=1)
    assert "Upload a reference photo" in live.status_line()
    live.set_reference(webcam_frame(4))
    try:
        assert live.status_line().startswith("starting: the first picture takes a few seconds")
        held = live.make_pose_map(webcam_frame(5)).copy()
        assert held.max() > 0 and live.person_in_view
        again = live.make_pose_map(np.zeros((48, 64, 3), np.uint8))  # nobody in view
        assert (again == held).all() and not live.person_in_view and live.frames_without_person == 1
        assert "no person in view: holding the last pose" in live.status_line()
        out, _ = wait_for_output(live, frames=150)
        line = live.status_line(streaming=2)
        assert out is not None and "shown: measuring..." in line  # no frame rate before 3 s of frames
        assert "2 people are streaming: each gets about half the speed." in line
        for word in ("fps", "UNet", "latency", "dropped", " ms"):
            assert word not in line
        live.runner.dropped = 12
        assert "skipped 12 camera frames (the model was busy)" in live.status_line()
    finally:
        live.discard()
