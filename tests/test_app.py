"""The Gradio app: builds without launching, the missing-model notice, the handlers as plain functions,
and the Upload tab's endpoint through gradio_client against a locally launched app (tiny pipeline)."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


gr = pytest.importorskip("gradio")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py lives in the repo root

from test_live import FakeDetector, webcam_frame  # noqa: E402

import app  # noqa: E402


LIVE = dict(num_inference_steps=2, window=4, frames_per_level=1)


@pytest.fixture(scope="module")
def tiny_model(tiny_pipe_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny-turbonext"
    tiny_pipe_factory().save_pretrained(folder)
    pipe, notice = app.load_model(str(folder), "cpu")
    assert pipe is not None and not notice
    return pipe


def test_missing_model_shows_a_notice_instead_of_crashing(tmp_path, monkeypatch):
    monkeypatch.setattr("turbonext.loaders.hub.demo_model_path", lambda: tmp_path / "no-demo")
    pipe, notice = app.load_model(str(tmp_path / "nothing-here"), "cpu")
    assert pipe is None and "No model is loaded" in notice and "nothing-here" in notice
    demo = app.build_demo(pipe, notice)
    assert isinstance(demo, gr.Blocks)
    with pytest.raises(gr.Error, match="No model is loaded"):
        app.Handlers(None).generate(webcam_frame(), "clip.mp4", 4, 8)


def test_stream_handler_as_a_plain_function(tiny_model):
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE)
    assert h.stream(webcam_frame(), None)[2].startswith("Upload a reference")
    live, seen, status = h.set_reference(webcam_frame(7, 80, 60), None)
    assert seen.shape == (64, 64, 3) and "Reference set" in status
    try:
        out = None
        for i in range(150):
            out, pose, stats = h.stream(webcam_frame(i), live)
            if isinstance(out, np.ndarray):
                break
            time.sleep(0.02)
        assert isinstance(out, np.ndarray) and out.shape == (64, 64, 3)
        assert pose.shape == (64, 64, 3) and "fps" in stats
        with pytest.raises(gr.Error, match="uint8"):
            h.stream(np.zeros((8, 8, 3), np.float32), live)
    finally:
        live.close()


def test_reference_without_a_person_warns_and_uses_a_centre_crop(tiny_model):
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE)
    live, seen, _ = h.set_reference(np.zeros((40, 80, 3), np.uint8), None)  # gr.Warning outside an event: logged
    try:
        assert seen.shape == (64, 64, 3) and not live.reference.person_found
    finally:
        live.close()


def test_command_line_stream_settings_reach_the_webcam_stream(tiny_model, monkeypatch):
    args = app.parse_args(["--compile", "reduce-overhead", "--frames-per-level", "1"])
    settings = app.live_settings(args)
    assert settings == {"compile": "reduce-overhead", "frames_per_level": 1}
    assert app.live_settings(app.parse_args([])) == {"compile": None}  # on a GPU: the library's defaults
    assert app.live_settings(app.parse_args([]), "cpu") == {"compile": None, "window": app.CPU_STREAM_WINDOW}
    assert app.live_settings(app.parse_args(["--window", "16"]), "cpu")["window"] == 16
    monkeypatch.setenv("TURBONEXT_WINDOW", "12")  # the Space variable
    assert app.live_settings(app.parse_args([]), "cpu")["window"] == 12
    assert app.live_settings(app.parse_args(["--schedule", "staggered"]))["schedule"] == "staggered"
    with pytest.raises(SystemExit):
        app.parse_args(["--compile", "fast"])
    with pytest.raises(SystemExit):
        app.parse_args(["--schedule", "diagonal"])
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs={**LIVE, **settings})
    live, _, status = h.set_reference(webcam_frame(7, 80, 60), None)
    try:  # the stream's UNet is wrapped by torch.compile (compiled lazily, on its first frame: not run here)
        session = live.runner.session.session
        assert session.per_level == 1 and session.unet is not tiny_model.unet
        assert session.unet._orig_mod is tiny_model.unet and "torch.compile" in status
    finally:
        live.close()


def test_upload_tab_through_gradio_client(tiny_model, tmp_path):
    from gradio_client import Client, handle_file

    from turbonext.data.video_io import write_video

    ref = tmp_path / "ref.png"
    Image.fromarray(webcam_frame(3, 80, 60)).save(ref)
    clip = tmp_path / "driving.mp4"
    write_video(clip, [webcam_frame(i, 48, 64) for i in range(6)], fps=12)
    demo = app.build_demo(tiny_model, detector_factory=FakeDetector)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        video, preview = client.predict(handle_file(str(ref)), handle_file(str(clip)), 2, 8,
                                        api_name="/generate")
        path = Path(video["video"] if isinstance(video, dict) else video)
        assert path.is_file() and path.stat().st_size > 0 and Path(preview).is_file()
        with pytest.raises(Exception, match="driving video"):  # gr.Error reaches the client as AppError
            client.predict(handle_file(str(ref)), None, 2, 8, api_name="/generate")
    finally:
        demo.close()


def test_push_space_dry_run_lists_the_files_and_touches_no_network(capsys, monkeypatch):
    import importlib.util

    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("the dry run must not call the Hub")

    monkeypatch.setattr(huggingface_hub, "create_repo", no_network)
    monkeypatch.setattr(huggingface_hub, "upload_folder", no_network)
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("push_space", root / "examples" / "push_space.py")
    push_space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(push_space)
    assert push_space.main(["--repo-id", "someone/turbonext", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in ("README.md", "app.py", "requirements.txt", "turbonext/jobs/live.py", "turbonext/pipelines/pipeline_turbonext.py"):
        assert f"  {name}  (" in out
    reqs = [line for line in push_space.space_requirements().splitlines() if not line.startswith("#")]
    assert "__pycache__" not in out and "torch>=2.4" in reqs and not any("gradio" in r for r in reqs)
    card = (root / "space" / "README.md").read_text()
    for line in ("sdk: gradio", "sdk_version: 6.31.0", "app_file: app.py", "suggested_hardware: a10g-small", "models:"):
        assert line in card
