"""Faults, each reported in one clear sentence, and the next request served: the Hub unreachable (and its other
refusals), a model folder with a missing, empty or truncated safetensors file or an unknown class, the pose
detector raising mid-stream, and out-of-memory on a too-large request (simulated from the UNet)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from huggingface_hub import errors as hub_errors

from turbonext import TurboNextPipeline
from turbonext.jobs.live import LiveSession
from turbonext.loaders.hub import InvalidModelFolderError, MissingWeightsError, check_safetensors_file


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py lives in the repo root

from test_live import FakeDetector, webcam_frame  # noqa: E402


LIVE = dict(num_inference_steps=1, window=4, frames_per_level=1)


# ------------------------------------------------------------------------------------------ the Hub
def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/models/owner/name"))


HUB_FAULTS = {
    "offline, not cached": (lambda: hub_errors.LocalEntryNotFoundError("Cannot find an appropriate cached snapshot"),
                            "not in the local Hub cache and the Hub cannot be reached"),
    "offline mode": (lambda: hub_errors.OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode"),
                     "could not be downloaded from the Hub .*Check the network"),
    "connection refused": (lambda: httpx.ConnectError("[Errno 111] Connection refused"),
                           "could not be downloaded from the Hub .*ConnectError"),
    "timeout": (lambda: httpx.ReadTimeout("The read operation timed out"), "could not be downloaded from the Hub"),
    "no such repo": (lambda: hub_errors.RepositoryNotFoundError("404 Client Error.", response=_response(404)),
                     "the Hub has no model repo 'owner/name'"),
    "gated": (lambda: hub_errors.GatedRepoError("403 Client Error.", response=_response(403)), "is gated"),
    "no such revision": (lambda: hub_errors.RevisionNotFoundError("404 Client Error.", response=_response(404)),
                         "has no revision"),
    "server error": (lambda: hub_errors.HfHubHTTPError("500 Server Error", response=_response(500)),
                     "could not be downloaded from the Hub .*500 Server Error"),
    "disk full": (lambda: OSError(28, "No space left on device"), "No space left on device"),
}


@pytest.mark.parametrize("fault", list(HUB_FAULTS))
def test_hub_faults_say_so(fault, monkeypatch):
    make_error, message = HUB_FAULTS[fault]

    def unreachable(*args, **kwargs):
        raise make_error()

    monkeypatch.setattr("huggingface_hub.snapshot_download", unreachable)
    with pytest.raises(MissingWeightsError, match=message) as info:
        TurboNextPipeline.from_pretrained("owner/name")
    assert "owner/name" in str(info.value)


def test_offline_for_real_says_so(tmp_path):
    """No monkeypatch: HF_HUB_OFFLINE=1 (tests/conftest.py) and an empty cache."""
    with pytest.raises(MissingWeightsError, match="Hub cannot be reached .*Download them once"):
        TurboNextPipeline.from_pretrained("owner/name", cache_dir=str(tmp_path))


def test_the_app_starts_without_the_hub_and_says_why(monkeypatch):
    pytest.importorskip("gradio")
    import app

    def unreachable(*args, **kwargs):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr("huggingface_hub.snapshot_download", unreachable)
    pipe, notice = app.load_model("owner/name", "cpu")
    assert pipe is not None  # the embedded demo, with the reason in the notice
    assert "Could not load model `owner/name`" in notice and "Connection refused" in notice and "demo" in notice


# --------------------------------------------------------------------------------------- a model folder
@pytest.fixture(scope="module")
def saved_model(tiny_pipe_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "model"
    tiny_pipe_factory().save_pretrained(folder)
    return folder


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_index(folder: Path, **changes) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))


UNET = "unet/diffusion_pytorch_model.safetensors"
FOLDER_FAULTS = {
    "missing unet weights": (lambda f: (f / UNET).unlink(), MissingWeightsError, r"unet has no \.safetensors weights"),
    "pickled weights only": (lambda f: (f / UNET).rename(f / "unet/diffusion_pytorch_model.bin"), MissingWeightsError,
                             r"diffusion_pytorch_model\.bin is never loaded"),
    "empty weights": (lambda f: (f / UNET).write_bytes(b""), InvalidModelFolderError, r"is empty \(0 bytes\)"),
    "truncated weights": (lambda f: _truncate(f / UNET, 0.5), InvalidModelFolderError, "is truncated: .* its header says"),
    "truncated header": (lambda f: _truncate(f / "vae/diffusion_pytorch_model.safetensors", 0.001),
                         InvalidModelFolderError, "truncated or not a safetensors file"),
    "garbage weights": (lambda f: (f / UNET).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json!!!!!!!!}"),
                        InvalidModelFolderError, "its header is not JSON"),
    "missing component folder": (lambda f: shutil.rmtree(f / "pose_guider"), MissingWeightsError,
                                 "has no pose_guider/ folder"),
    "unknown class": (lambda f: _edit_index(f, unet=["turbonext.models.unet_motion", "NoSuchUNet"]), ValueError,
                      "has no class `NoSuchUNet`"),
    "unknown library": (lambda f: _edit_index(f, unet=["evil_package", "UNet"]), ValueError,
                        "evil_package is not one of the libraries"),
    "component outside the folder": (lambda f: _edit_index(f, **{"../elsewhere": ["diffusers", "AutoencoderTiny"]}),
                                     InvalidModelFolderError, "component names must be plain folder names"),
    "broken model_index.json": (lambda f: (f / "model_index.json").write_text("{not json"), InvalidModelFolderError,
                                r"model_index\.json cannot be read"),
}


@pytest.mark.parametrize("fault", list(FOLDER_FAULTS))
def test_broken_model_folders_say_what_is_wrong(fault, saved_model, tmp_path):
    damage, error, message = FOLDER_FAULTS[fault]
    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    damage(folder)
    start = time.perf_counter()
    with pytest.raises(error, match=message):
        TurboNextPipeline.from_pretrained(str(folder))
    assert time.perf_counter() - start < 10


def test_the_app_falls_back_to_the_demo_with_a_broken_model(saved_model, tmp_path):
    pytest.importorskip("gradio")
    import app

    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    (folder / "text_encoder" / "model.safetensors").write_bytes(b"")  # was a SafetensorError that ended the app
    pipe, notice = app.load_model(str(folder), "cpu")
    assert pipe is not None and "is empty (0 bytes)" in notice and "demo" in notice


def test_safetensors_check_reads_headers_only(saved_model):
    check_safetensors_file(saved_model / UNET)  # a complete file passes
    with pytest.raises(FileNotFoundError):
        check_safetensors_file(saved_model / "unet" / "missing.safetensors")


# ----------------------------------------------------------------------------- the pose detector mid-stream
class FlakyDetector(FakeDetector):
    """FakeDetector that raises on its ``fail_on``-th call (1-based), once, then works again."""

    def __init__(self, fail_on: int = 3):
        super().__init__()
        self.fail_on = fail_on

    def detect(self, image):
        if self.calls + 1 == self.fail_on:
            self.calls += 1
            raise RuntimeError("pose backend crashed (simulated)")
        return super().detect(image)


@pytest.fixture(scope="module")
def pipe(tiny_pipe_factory):
    return tiny_pipe_factory()


def feed(live: LiveSession, start: int, frames: int = 200, pause: float = 0.01):
    """Frames into ``live`` until one comes out; -> (output or None, the error raised, if any)."""
    for i in range(start, start + frames):
        try:
            out = live.process(webcam_frame(i))
        except RuntimeError as err:
            return None, err
        if out is not None:
            return out, None
        time.sleep(pause)
    return None, None


def test_a_detector_failure_is_reported(pipe):
    live = LiveSession(pipe, FlakyDetector(fail_on=3), **LIVE)
    live.set_reference(webcam_frame(99, 80, 60))  # detection 1: the reference photo
    try:
        error = None
        for i in range(300):
            try:
                live.process(webcam_frame(i))
            except RuntimeError as err:
                error = err
                break
            time.sleep(0.01)
        assert error is not None and "pose backend crashed (simulated)" in str(error)
    finally:
        live.close()


def test_after_a_detector_failure_the_next_frames_are_served(pipe):
    live = LiveSession(pipe, FlakyDetector(fail_on=3), **LIVE)
    live.set_reference(webcam_frame(99, 80, 60))
    try:
        _, error = feed(live, 0)
        assert error is not None
        out, error = feed(live, 1000)
        assert error is None and out is not None
    finally:
        live.close()


def make_handlers(pipe, folder, users: int = 1, detector_factory=FakeDetector):
    """app.py's Handlers, given only the arguments this version of app.py takes."""
    import inspect

    import app

    wanted = dict(detector_factory=detector_factory, live_kwargs=LIVE, frames_root=folder, max_live_sessions=users)
    accepted = inspect.signature(app.Handlers).parameters
    return app.Handlers(pipe, **{k: v for k, v in wanted.items() if k in accepted})


def stream_until(h, live, start: int, frames: int = 300):
    """Webcam frames through the app's handler until a picture comes back; -> (picture, last status)."""
    gr = pytest.importorskip("gradio")
    status = ""
    for i in range(start, start + frames):
        out, _, status = h.stream(webcam_frame(i), live)
        if not isinstance(out, type(gr.skip())) and out is not None and not isinstance(out, dict):
            return out, status
        if "stopped" in status:
            return None, status
        time.sleep(0.01)
    return None, status


def test_the_app_reports_a_detector_failure_and_serves_again(pipe, tmp_path):
    pytest.importorskip("gradio")
    detectors = []

    def factory():
        detectors.append(FlakyDetector(fail_on=3))
        return detectors[-1]

    h = make_handlers(pipe, tmp_path, detector_factory=factory)
    live, _, status = h.set_reference(webcam_frame(99, 80, 60), None)
    try:
        out, status = stream_until(h, live, 0)
        assert out is None and "pose backend crashed" in status  # said in the status line, not a bare "Error"
        live, _, status = h.set_reference(webcam_frame(98, 80, 60), live)  # the user uploads the photo again
        assert "Reference set" in status
        out, status = stream_until(h, live, 1000)
        assert out is not None, status
    finally:
        live.close()


# ---------------------------------------------------------------------------------------- out of memory
class OutOfMemoryOnce:
    """Replaces a UNet's forward: the first ``times`` calls raise torch.OutOfMemoryError, then the real one."""

    def __init__(self, unet, times: int = 1):
        self.forward, self.left = unet.forward, times

    def __call__(self, *args, **kwargs):
        if self.left > 0:
            self.left -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 38.00 GiB (simulated)")
        return self.forward(*args, **kwargs)


def test_out_of_memory_in_a_clip_then_the_next_clip(pipe, monkeypatch):
    monkeypatch.setattr(pipe.unet, "forward", OutOfMemoryOnce(pipe.unet))
    args = dict(reference_image=np.zeros((32, 32, 3), np.uint8), pose_images=[np.zeros((32, 32, 3), np.uint8)] * 2,
                num_inference_steps=1, output_type="np")
    with pytest.raises(torch.OutOfMemoryError, match="out of memory"):
        pipe(**args)
    assert pipe(**args).frames[0].shape == (2, 32, 32, 3)  # nothing left behind: the next request renders


def test_the_app_reports_out_of_memory_and_serves_the_next_clip(pipe, tmp_path, monkeypatch):
    gr = pytest.importorskip("gradio")
    from turbonext.data.video_io import write_video

    clip = tmp_path / "driving.mp4"
    write_video(clip, [webcam_frame(i, 48, 64) for i in range(4)], fps=12)
    h = make_handlers(pipe, tmp_path / "frames")
    monkeypatch.setattr(pipe.unet, "forward", OutOfMemoryOnce(pipe.unet))
    with pytest.raises(gr.Error, match="out of memory"):
        h.generate(webcam_frame(3, 80, 60), str(clip), 1, 8)
    out = h.generate(webcam_frame(3, 80, 60), str(clip), 1, 8)
    assert Path(out[0]).is_file()
    if Path(out[0]).parent.name.startswith("turbonext-clip-"):  # the clip job's own temporary folder
        shutil.rmtree(Path(out[0]).parent)


def test_out_of_memory_in_the_live_stream_is_reported_and_a_new_photo_restarts_it(pipe, tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    h = make_handlers(pipe, tmp_path)
    live, _, _ = h.set_reference(webcam_frame(99, 80, 60), None)
    try:
        monkeypatch.setattr(pipe.unet, "forward", OutOfMemoryOnce(pipe.unet))
        out, status = stream_until(h, live, 0)
        assert out is None and "out of memory" in status.lower()
        live, _, status = h.set_reference(webcam_frame(98, 80, 60), live)
        out, status = stream_until(h, live, 1000)
        assert out is not None, status
    finally:
        live.close()
