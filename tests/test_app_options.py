"""The app's Upload options (issue 16): Fast / HQ mode, a person made from a description, style LoRA uploads, several
people in the driving video, the clip's frame rate (MP4 H.264 + GIF, 24 by default); and that one user's mode or
LoRA never reaches another user's render on the shared pipeline. Handlers called as plain functions on tiny
pipelines (64x64, 1-2 steps)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import write_tiny_lora
from PIL import Image


gr = pytest.importorskip("gradio")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py lives in the repo root

from test_live import FakeDetector, standing_keypoints, webcam_frame  # noqa: E402

import app  # noqa: E402
from turbonext.data.video_io import write_video  # noqa: E402
from turbonext.jobs import clip as clip_job  # noqa: E402
from turbonext.jobs.driving_inputs import poses_from_video  # noqa: E402
from turbonext.jobs.options import (  # noqa: E402
    MAX_STYLE_LORA_BYTES,
    USER_ADAPTER_PREFIX,
    StyleLora,
    applied_options,
    read_style_lora_upload,
)
from turbonext.jobs.sharing import pipeline_lock  # noqa: E402
from turbonext.pipelines.pipeline_turbonext import MAX_STYLE_LORAS  # noqa: E402
from turbonext.pose.backends import PoseDetector  # noqa: E402
from turbonext.pose.keypoints import Person  # noqa: E402


def video_meta(path) -> dict:
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        return next(reader)
    finally:
        reader.close()


@pytest.fixture(scope="module")
def loras(tiny_hub, tmp_path_factory):
    """LoRA files: style ones for the tiny SD1.5 UNet, LCM, and one made for the (tiny) SD 2.1 UNet (other shapes)."""
    root = tmp_path_factory.mktemp("loras")
    unet = f"{tiny_hub['base']}/unet"
    files = {f"style{i}": Path(write_tiny_lora(unet, root / f"style{i}", seed=30 + i)) / "pytorch_lora_weights.safetensors"
             for i in range(MAX_STYLE_LORAS + 1)}
    for name, file in list(files.items()):  # the names users upload them under
        files[name] = file.rename(file.with_name(f"{name}.safetensors"))
    files["lcm"] = Path(write_tiny_lora(unet, root / "lcm", seed=11))
    sd21 = Path(write_tiny_lora(f"{tiny_hub['base_sd21']}/unet", root / "sd21", seed=5)) / "pytorch_lora_weights.safetensors"
    files["sd21"] = sd21.rename(sd21.with_name("sdxl_style.safetensors"))
    return files


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "me.png"
    Image.fromarray(webcam_frame(3, 80, 60)).save(path)
    return str(path)


class Captured:
    """Records what each clip job writes (its frames, exactly) by the MP4's path."""

    def __init__(self, monkeypatch):
        self.frames, self._write = {}, clip_job.write_video
        monkeypatch.setattr(clip_job, "write_video", self)

    def __call__(self, path, frames, fps=10.0, **kwargs):
        self.frames[str(path)] = np.stack(frames)
        return self._write(path, frames, fps=fps, **kwargs)


def handlers(pipe, tmp_path):
    return app.Handlers(pipe, detector_factory=FakeDetector, frames_root=tmp_path / "frames")


def adapters(pipe) -> list[str]:
    return sorted(name for names in pipe.get_list_adapters().values() for name in names)


# ----------------------------------------------------------------------------------------------- modes
def test_the_mode_radio_switches_fast_and_hq_per_render_without_reloading(tiny_pipe_factory, loras, photo, tmp_path):
    pipe = tiny_pipe_factory().load_lcm_lora(str(loras["lcm"]))
    scheduler, unet = pipe.scheduler, pipe.unet
    h = handlers(pipe, tmp_path)
    assert h.mode_problems == {"fast": None, "hq": None}
    steps, info = h.choose_mode("hq")
    assert steps["value"] == 25 and "DPM-Solver++" in info and "guidance 6" in info
    assert h.choose_mode("fast")[0]["value"] == 4
    seen = []  # the scheduler the render samples with, read at every step
    out = h.generate(photo, None, 2, 4, "wave", mode="hq",
                     progress=lambda fraction, desc="": seen.append(type(pipe.scheduler).__name__))
    assert "DPMSolverMultistepScheduler" in seen and "HQ mode" in out[2]
    # taken off after the render: the next user gets the pipeline as it was (LCM on at its scale, same modules)
    assert pipe.mode == "fast" and pipe.scheduler is scheduler and pipe.unet is unet
    layer = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert layer.scaling["lcm"] == pytest.approx(1.0)
    assert "Fast mode" in h.generate(photo, None, 1, 4, "wave", mode="fast", progress=None)[2]


def test_a_mode_the_model_cannot_do_is_one_sentence(tiny_pipe_factory, loras, photo, tmp_path):
    fused = tiny_pipe_factory(lcm_lora=str(loras["lcm"]))  # LCM fused into the weights, like the demo model
    h = handlers(fused, tmp_path)
    assert h.mode_problems["fast"] is None and "fused into its weights" in h.mode_problems["hq"]
    assert app.model_default_mode(fused) == "fast" and "HQ mode is not available" in app.mode_help(h.mode_problems)
    steps, info = h.choose_mode("hq")
    assert type(steps) is type(gr.skip()) and info.startswith("HQ mode is not available with this model")
    with pytest.raises(gr.Error, match="HQ mode is not available"):
        h.generate(photo, None, 1, 4, "wave", mode="hq", progress=None)
    scheduler = fused.scheduler
    assert "Done: 4 frames" in h.generate(photo, None, 1, 4, "wave", mode="fast", progress=None)[2]
    assert fused.mode is None and fused.scheduler is scheduler  # fast was its own sampling: nothing changed
    base = handlers(tiny_pipe_factory(), tmp_path)  # no LCM at all
    assert base.mode_problems["hq"] is None and "no LCM-LoRA" in base.mode_problems["fast"]
    with pytest.raises(gr.Error, match="Fast mode is not available"):
        base.generate(photo, None, 1, 4, "wave", mode="fast", progress=None)
    assert app.model_default_mode(base.pipe) is None and "own sampler" in base.choose_mode(app.MODEL_OWN_MODE)[1]
    assert "Done" in base.generate(photo, None, 1, 4, "wave", mode=app.MODEL_OWN_MODE, progress=None)[2]


# ----------------------------------------------------------------------------------------------- text identity
def test_a_description_makes_the_person_when_no_photo_is_given(tiny_pipe_factory, photo, tmp_path):
    h = handlers(tiny_pipe_factory(), tmp_path)
    video, _, status, made, files = h.generate(None, None, 1, 4, "wave", description="a dancer in a red dress",
                                               progress=None)
    assert made.shape == (64, 64, 3) and made.dtype == np.uint8 and "made from your description" in status
    assert Path(video).is_file() and [Path(f).suffix for f in files] == [".mp4", ".gif"]
    again = h.generate(None, None, 1, 4, "wave", description="a dancer in a red dress", progress=None)[3]
    np.testing.assert_array_equal(again, made)  # deterministic (seed 0)
    other = h.generate(None, None, 1, 4, "wave", description="a climber in a green jacket", progress=None)[3]
    assert not np.array_equal(other, made)
    with pytest.raises(gr.Error, match="No reference photo yet.*describe a person"):
        h.generate(None, None, 1, 4, "wave", description="   ", progress=None)
    out = h.generate(photo, None, 1, 4, "wave", description="a dancer", progress=None)  # the photo wins, and says so
    assert out[3] is None and "The description was not used" in out[2]


def test_the_made_persons_pose_can_start_the_motion(tiny_pipe_factory, photo, tmp_path):
    h = handlers(tiny_pipe_factory(), tmp_path)  # FakeDetector: one standing person in any image that is not black
    plain = h.generate(None, None, 1, 4, "wave", description="a dancer in a red dress", progress=None)
    started = h.generate(None, None, 1, 4, "wave", description="a dancer in a red dress", start_from_made_pose=True,
                         progress=None)
    assert "Done: 4 frames" in plain[2] and "Done: 5 frames" in started[2]  # the made pose first, then the motion
    np.testing.assert_array_equal(started[3], plain[3])
    out = h.generate(photo, None, 1, 4, "wave", start_from_made_pose=True, progress=None)  # a photo: ignored, said
    assert "Done: 4 frames" in out[2] and "made person's pose' was not used" in out[2]
    demo = app.build_demo(None)
    boxes = [b for b in demo.blocks.values() if isinstance(b, gr.Checkbox)
             and b.label == "Start the motion from the made person's pose"]
    assert len(boxes) == 1 and boxes[0].value is False


def test_a_model_without_text_says_it_cannot_make_a_person(tmp_path):
    from turbonext.converters.build import build_random_pipeline

    pipe = build_random_pipeline("animate-anyone", tiny=True)
    pipe.set_progress_bar_config(disable=True)
    with pytest.raises(gr.Error, match="cannot make a person from a description"):
        handlers(pipe, tmp_path).generate(None, None, 1, 4, "wave", description="a dancer", progress=None)


# ----------------------------------------------------------------------------------------------- style LoRAs
def test_style_lora_uploads_good_bad_too_many_and_removed(tiny_pipe_factory, loras, photo, tmp_path, monkeypatch):
    pipe = tiny_pipe_factory()
    h = handlers(pipe, tmp_path)
    captured = Captured(monkeypatch)
    plain = h.generate(photo, None, 1, 4, "wave", progress=None)[0]

    styles, status, cleared = h.add_style_lora(str(loras["style0"]), 0.9, [])
    assert [s.name for s in styles] == ["style0.safetensors"] and styles[0].weight == 0.9 and cleared is None
    assert status.startswith("Added style0.safetensors at 0.9.") and adapters(pipe) == []  # tried, then taken off
    bad = {"notes.safetensors": b"hello, not a tensor file", "model.ckpt": b"PK\x03\x04 pickle"}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    import torch
    from safetensors.torch import save_file

    save_file({"conv_in.weight": torch.zeros(4, 4)}, str(tmp_path / "full_model.safetensors"))
    for file, weight, says in [(tmp_path / "notes.safetensors", 0.8, "could not be read as a safetensors file"),
                               (tmp_path / "model.ckpt", 0.8, "is not a .safetensors file"),
                               (tmp_path / "full_model.safetensors", 0.8, "holds no LoRA weights"),
                               (loras["sd21"], 0.8, "'sdxl_style.safetensors' does not fit this model"),
                               (loras["style1"], 2.0, "weight must be from 0 to 1.5"),
                               (None, 0.8, "No style LoRA file yet")]:
        kept, status, _ = h.add_style_lora(str(file) if file else None, weight, styles)
        assert says in status and kept == styles and "\n" not in status, status
        assert adapters(pipe) == [] and pipe.style_loras == {}  # a failed trial leaves nothing on the model
    for i in (1, 2):
        styles, status, _ = h.add_style_lora(str(loras[f"style{i}"]), 0.5, styles)
    assert len(styles) == MAX_STYLE_LORAS and "style2.safetensors at 0.5" in status
    kept, status, _ = h.add_style_lora(str(loras["style3"]), 0.5, styles)
    assert kept == styles and f"At most {MAX_STYLE_LORAS} style LoRAs can be stacked" in status

    styled = h.generate(photo, None, 1, 4, "wave", styles=styles, progress=None)
    assert "Style LoRAs: style0.safetensors at 0.9" in styled[2]
    assert not np.array_equal(captured.frames[styled[0]], captured.frames[plain])  # (tiny model: small changes)
    assert adapters(pipe) == [] and pipe.style_loras == {}  # taken off after the render
    styles, status = h.remove_style_loras(styles)
    assert styles == [] and status.startswith("No style LoRA")
    again = h.generate(photo, None, 1, 4, "wave", styles=styles, progress=None)[0]
    np.testing.assert_array_equal(captured.frames[again], captured.frames[plain])


def test_style_lora_file_checks_without_a_model(loras, tmp_path, monkeypatch):
    lora = read_style_lora_upload(str(loras["style0"]), 1.5)
    assert lora == StyleLora(str(loras["style0"]), 1.5, "style0.safetensors")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        read_style_lora_upload(str(empty))
    monkeypatch.setattr("turbonext.jobs.options.MAX_STYLE_LORA_BYTES", 100)
    with pytest.raises(ValueError, match="at most 0 MB"):
        read_style_lora_upload(str(loras["style0"]))
    assert MAX_STYLE_LORA_BYTES == 200 * 1024 * 1024


def test_a_lora_that_fails_at_render_time_leaves_the_model_as_it_was(tiny_pipe_factory, loras, photo, tmp_path):
    """A LoRA accepted while the model was busy (not tried yet) that does not fit: the render says so, and loads
    nothing; the user's other LoRA, loaded first, is taken off again."""
    pipe = tiny_pipe_factory()
    h = handlers(pipe, tmp_path)
    styles = [StyleLora(str(loras["style0"]), 0.8), StyleLora(str(loras["sd21"]), 0.8)]
    with pytest.raises(gr.Error, match="'sdxl_style.safetensors' does not fit this model"):
        h.generate(photo, None, 1, 4, "wave", styles=styles, progress=None)
    assert adapters(pipe) == [] and pipe.style_loras == {}
    assert "Done" in h.generate(photo, None, 1, 4, "wave", progress=None)[2]


def test_a_busy_model_defers_the_trial_of_an_uploaded_lora(tiny_pipe_factory, loras, tmp_path, monkeypatch):
    pipe = tiny_pipe_factory()
    h = handlers(pipe, tmp_path)
    monkeypatch.setattr(app, "STYLE_CHECK_WAIT", 0.05)
    held, release = threading.Event(), threading.Event()

    def busy():  # another user's render holds the model
        with pipeline_lock(pipe):
            held.set()
            release.wait(10)

    worker = threading.Thread(target=busy)
    worker.start()
    held.wait(10)
    try:
        styles, status, _ = h.add_style_lora(str(loras["style0"]), 0.8, [])
    finally:
        release.set()
        worker.join()
    assert len(styles) == 1 and "the model is busy: whether it fits is checked when you generate" in status


# ----------------------------------------------------------------------------------------------- isolation
def test_one_users_mode_and_lora_never_reach_another_users_render(tiny_pipe_factory, loras, photo, tmp_path, monkeypatch):
    """Two users on one pipeline at once: A renders in HQ with a style LoRA, B in Fast with none. B's frames are
    exactly those B gets alone, whatever the order; A's choice is on the model only while A's render holds its
    lock (a live stream step, which takes the same lock, cannot run in between)."""
    pipe = tiny_pipe_factory().load_lcm_lora(str(loras["lcm"]))
    h = handlers(pipe, tmp_path)
    captured = Captured(monkeypatch)
    a_styles = [StyleLora(str(loras["style0"]), 1.0)]
    b_alone = captured.frames[h.generate(photo, None, 2, 4, "dance", mode="fast", progress=None)[0]]
    a_alone = captured.frames[h.generate(photo, None, 2, 4, "dance", mode="hq", styles=a_styles, progress=None)[0]]
    assert np.abs(a_alone.astype(int) - b_alone.astype(int)).max() > 2

    lock = pipeline_lock(pipe)
    lock_free_during_a = []

    def try_lock():
        got = lock.acquire(blocking=False)
        lock_free_during_a.append(got)
        if got:
            lock.release()

    def a_progress(fraction, desc=""):
        if "denoising" in desc:  # A's LoRA and mode are on the model now: nobody else may get the lock
            probe = threading.Thread(target=try_lock)
            probe.start()
            probe.join()
            assert pipe.mode == "hq" and any(n.startswith(USER_ADAPTER_PREFIX) for n in adapters(pipe))

    results = {}

    def user(name, **kwargs):
        results[name] = h.generate(photo, None, 2, 4, "dance", **kwargs)

    threads = [threading.Thread(target=user, args=("a",), kwargs=dict(mode="hq", styles=a_styles, progress=a_progress))]
    threads += [threading.Thread(target=user, args=(f"b{i}",), kwargs=dict(mode="fast", progress=None)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(results) == {"a", "b0", "b1"}
    for name in ("b0", "b1"):
        np.testing.assert_array_equal(captured.frames[results[name][0]], b_alone)
    np.testing.assert_array_equal(captured.frames[results["a"][0]], a_alone)
    assert lock_free_during_a and not any(lock_free_during_a)
    assert pipe.mode == "fast" and adapters(pipe) == ["lcm"] and pipe.style_loras == {}


def test_applied_options_keep_the_pipelines_own_style_loras(tiny_pipe_factory, loras):
    pipe = tiny_pipe_factory().load_lcm_lora(str(loras["lcm"]))
    pipe.load_style_lora(str(loras["style3"]), weight=0.4, name="house")
    layer = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    with applied_options(pipe, "hq", [StyleLora(str(loras["style0"]), 0.7)]):
        assert layer.scaling["lcm"] == 0 and layer.scaling[f"{USER_ADAPTER_PREFIX}1"] == pytest.approx(0.7)
        assert layer.scaling["house"] == pytest.approx(0.4)
    assert adapters(pipe) == ["house", "lcm"] and pipe.style_loras == {"house": 0.4} and pipe.mode == "fast"
    assert layer.scaling["lcm"] == pytest.approx(1.0) and layer.scaling["house"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="At most 2 style LoRAs can be stacked \\(the model has 1 of its own\\)"):
        with applied_options(pipe, style_loras=[StyleLora(str(loras[f"style{i}"]), 0.5) for i in range(3)]):
            pass
    assert adapters(pipe) == ["house", "lcm"]


# ----------------------------------------------------------------------------------------------- several people
class TwoPeople(PoseDetector):
    """A big person on the left and a small one on the right of every frame."""

    name = "two"

    def detect(self, image):
        h, w = np.asarray(image).shape[:2]
        return [Person(standing_keypoints(0.25 * w, 0.1 * h, 0.8 * h)), Person(standing_keypoints(0.75 * w, 0.4 * h, 0.5 * h))]


def test_several_people_in_the_driving_video_the_largest_or_everyone(tiny_pipe_factory, photo, tmp_path):
    clip = tmp_path / "pair.mp4"
    write_video(clip, [np.full((48, 96, 3), 120, np.uint8)] * 3, fps=24)
    notices_main, notices_all = [], []
    main = poses_from_video(clip, 64, detector=TwoPeople(), progress=False, notices=notices_main)
    everyone = poses_from_video(clip, 64, detector=TwoPeople(), progress=False, notices=notices_all, people="all")
    assert "shows up to 2 people; only the largest one was followed" in notices_main[0]
    assert "everyone found drives the clip" in notices_all[0]
    def figures(pose) -> int:  # groups of lit columns: one per skeleton standing apart
        lit = (np.asarray(pose).max(axis=2) > 0).any(axis=0).astype(int)
        return int(lit[0] + (np.diff(lit) == 1).sum())

    assert figures(main[0]) == 1 and figures(everyone[0]) == 2
    with pytest.raises(ValueError, match="people must be one of"):
        poses_from_video(clip, 64, detector=TwoPeople(), progress=False, people="two")
    h = app.Handlers(tiny_pipe_factory(), detector_factory=TwoPeople, frames_root=tmp_path / "frames")
    assert "everyone found drives the clip" in h.generate(photo, str(clip), 1, 8, people="all", progress=None)[2]


# ----------------------------------------------------------------------------------------------- frame rate
def test_the_clip_is_h264_at_24_fps_by_default_or_the_chosen_rate_with_a_gif(tiny_pipe_factory, photo, tmp_path):
    h = handlers(tiny_pipe_factory(), tmp_path)
    video, _, status, _, files = h.generate(photo, None, 1, 4, "wave", progress=None)
    meta = video_meta(video)
    assert meta["codec"] == "h264" and meta["fps"] == 24 and "24 frames/s" in status
    gif = Image.open(files[1])
    assert gif.n_frames == 4 and gif.info["duration"] == pytest.approx(1000 / 24, abs=10)  # GIF: 1/100 s steps
    video, _, status, _, files = h.generate(photo, None, 1, 4, "wave", fps=10, progress=None)
    assert video_meta(video)["fps"] == 10 and Image.open(files[1]).info["duration"] == 100
    with pytest.raises(gr.Error, match="fps must be"):
        h.generate(photo, None, 1, 4, "wave", fps=0, progress=None)
    assert app.DEFAULT_FPS == 24
