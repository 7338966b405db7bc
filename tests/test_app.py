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


class FakeRequest:
    def __init__(self, session_hash):
        self.session_hash = session_hash


def stream_until_a_frame(h, live, request=None, ticks=150):
    """Webcam ticks until a rendered frame comes back; returns every tick's (result, pose, status)."""
    seen = []
    for i in range(ticks):
        seen.append(h.stream(webcam_frame(i), live, request))
        if isinstance(seen[-1][0], str):
            break
        time.sleep(0.02)
    return seen


def test_stream_handler_as_a_plain_function(tiny_model, tmp_path):
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE, frames_root=tmp_path)
    assert h.stream(webcam_frame(), None)[2].startswith("Upload a reference")
    live, seen, status = h.set_reference(webcam_frame(7, 80, 60), None)
    assert seen.shape == (64, 64, 3) and "Reference set" in status
    try:
        ticks = stream_until_a_frame(h, live)
        out, _, stats = ticks[-1]
        assert isinstance(out, str) and np.asarray(Image.open(out)).shape == (64, 64, 3)
        poses = [pose for _, pose, _ in ticks if isinstance(pose, str)]
        assert poses and np.asarray(Image.open(poses[-1])).shape == (64, 64, 3)
        assert stats.startswith(("starting", "shown:")) and "UNet" not in stats
        with pytest.raises(gr.Error, match="uint8"):
            h.stream(np.zeros((8, 8, 3), np.float32), live)
    finally:
        live.discard()


def test_gradio_rewrites_a_cached_image_in_place(tmp_path, monkeypatch):
    """The cause of the h11 "Too little/Too much data for declared Content-Length" errors: Gradio saves an
    array output to <cache>/<hash of its bytes>/image.webp and writes that file again (truncate + write) every
    time the same picture is returned, while a browser may still be downloading it."""
    from gradio import processing_utils

    writes = []
    original = Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: (writes.append(str(self)), original(self, data))[1])
    frame = webcam_frame(3)
    first = processing_utils.save_img_array_to_cache(frame, str(tmp_path))
    second = processing_utils.save_img_array_to_cache(frame, str(tmp_path))
    assert first == second and writes == [first, first]  # one path, written twice in place


def test_streamed_pictures_are_each_a_new_complete_file_and_unchanged_ones_are_not_resent(tiny_model, tmp_path):
    """The fix: the stream handler returns file paths, never arrays; each new picture is a new file, complete
    before its name exists and never written again; a tick with nothing new sends nothing (gr.skip)."""
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE, frames_root=tmp_path)
    live, _, _ = h.set_reference(webcam_frame(7, 80, 60), None)
    try:
        ticks = stream_until_a_frame(h, live)
        for i in range(40):
            ticks.append(h.stream(webcam_frame(1000 + i), live))
            time.sleep(0.01)
        sent = [value for tick in ticks for value in tick[:2] if isinstance(value, str)]
        assert len(sent) == len(set(sent)) >= 2  # no path ever sent twice
        assert any(not isinstance(tick[0], str) for tick in ticks[-40:])  # ticks without a new frame sent nothing
        assert all(isinstance(v, str) or type(v) is type(gr.skip()) for tick in ticks for v in tick[:2])
        stamps = {}
        for path in sent:
            if Path(path).exists():
                stamps[path] = Path(path).stat()
                with Image.open(path) as im:
                    im.load()  # the whole file is there
        time.sleep(0.05)
        for _ in range(10):
            h.stream(webcam_frame(5), live)
        for path, before in stamps.items():
            if Path(path).exists():
                after = Path(path).stat()
                assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
        assert not list(Path(tmp_path).rglob(".*.part"))
    finally:
        live.discard()
    assert not any(Path(tmp_path).iterdir())  # the session's files went with it


def test_a_bad_photo_says_why_in_the_webcam_status(tiny_model, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_text("not a picture")
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE, frames_root=tmp_path)
    live, seen, status = h.set_reference(str(bad), None)
    assert seen is None and "'holiday.png' could not be read as an image" in status and "PNG, JPEG" in status
    assert h.stream(webcam_frame(), live)[2] == status  # not "Upload a reference photo"
    live, seen, status = h.set_reference(webcam_frame(7, 80, 60), live)
    try:
        assert "Reference set" in status
        live, seen, status = h.set_reference(str(bad), live)  # a running stream keeps its photo
        assert "previous photo is still in use" in status and live.runner is not None
    finally:
        live.discard()


def test_a_failing_model_stops_the_stream_with_one_sentence(tiny_model, tmp_path):
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE, frames_root=tmp_path)
    live, _, _ = h.set_reference(webcam_frame(7, 80, 60), None)

    def broken(pose_map):
        raise RuntimeError("device lost")

    live.runner.session.session.step = broken
    try:
        for i in range(150):
            status = h.stream(webcam_frame(i), live)[2]
            if live.runner is None:
                break
            time.sleep(0.02)
        assert status.startswith("The live stream stopped (the stream worker failed: device lost)")
        assert "Upload the photo again" in status and h.stream(webcam_frame(0), live)[2] == status  # no error storm
    finally:
        live.discard()


def test_live_sessions_are_capped_shared_and_released_when_the_user_leaves(tiny_model, tmp_path):
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE, frames_root=tmp_path,
                     max_live_sessions=2)
    a, b, c = FakeRequest("a"), FakeRequest("b"), FakeRequest("c")
    lives = [h.set_reference(webcam_frame(7 + i, 80, 60), None, req)[0] for i, req in enumerate((a, b, c))]
    try:
        h.stream(webcam_frame(1), lives[0], a)
        status_b = h.stream(webcam_frame(1), lives[1], b)[2]
        assert "2 people are streaming: each gets about half the speed." in status_b
        result, pose, status_c = h.stream(webcam_frame(1), lives[2], c)
        assert "The machine is busy" in status_c and "Try again in a minute" in status_c
        assert type(result) is type(gr.skip()) and type(pose) is type(gr.skip())
        h.leave(a)  # the page was closed: the seat is free and the stream ended at once
        assert lives[0].runner is None
        assert "busy" not in h.stream(webcam_frame(2), lives[2], c)[2]
    finally:
        for live in lives:
            live.discard()


def test_the_people_choice_reaches_the_users_live_session(tiny_model, tmp_path):
    """Webcam tab, the People radio: the choice made before the photo goes into the user's new LiveSession (with the
    app's cap on people); a change while streaming applies to the running session at once; a new photo keeps it."""
    assert [value for _, value in app.LIVE_PEOPLE] == ["largest", "all"]
    assert f"up to {app.LIVE_MAX_PEOPLE}" in app.LIVE_PEOPLE[1][0]
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE, frames_root=tmp_path)
    live, _, status = h.set_reference(webcam_frame(7, 80, 60), None, FakeRequest("a"), "all")
    try:
        assert "Reference set" in status and live.people == "all"
        assert live.poses.tracker.max_people == app.LIVE_MAX_PEOPLE
        runner = live.runner
        h.choose_people("largest", live)  # while streaming: no restart
        assert live.people == "largest" and live.runner is runner
        stream_until_a_frame(h, live, FakeRequest("a"))
        h.choose_people("all", live)
        live, _, _ = h.set_reference(webcam_frame(8, 80, 60), live, FakeRequest("a"), "all")
        assert live.people == "all"
        live, _, _ = h.set_reference(webcam_frame(8, 80, 60), live, FakeRequest("a"))  # the default: the largest
        assert live.people == "largest"
        h.choose_people("all", None)  # no session yet: nothing to change (the photo brings the choice)
    finally:
        live.discard()
    demo = app.build_demo(tiny_model, detector_factory=FakeDetector)
    radios = [b for b in demo.blocks.values() if isinstance(b, gr.Radio) and b.label == "People"]
    assert len(radios) == 1 and radios[0].value == "largest"


def test_examples_run_offline_with_a_builtin_motion(tiny_model, tmp_path):
    from turbonext.jobs.examples import example_files

    h = app.Handlers(tiny_model, detector_factory=FakeDetector, frames_root=tmp_path)
    photo = example_files(tmp_path)["synthetic figure"]
    video, preview, status, made, files = h.run_example(str(photo), "wave", 2, 8, progress=None)
    assert made is None and files == [video, str(Path(video).with_suffix(".gif"))]
    assert Path(video).is_file() and preview.shape[0] > 0 and status.startswith("Done: 8 frames")
    with pytest.raises(gr.Error, match="No driving video yet"):
        h.generate(str(photo), None, 2, 8, app.VIDEO_SOURCE, progress=None)


def test_reference_without_a_person_warns_and_uses_a_centre_crop(tiny_model, tmp_path):
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs=LIVE, frames_root=tmp_path)
    live, seen, _ = h.set_reference(np.zeros((40, 80, 3), np.uint8), None)  # gr.Warning outside an event: logged
    try:
        assert seen.shape == (64, 64, 3) and not live.reference.person_found
    finally:
        live.close()


def test_max_live_sessions_from_the_command_line_or_the_environment(monkeypatch):
    assert app.max_live_sessions(app.parse_args([]), "cpu") == 1
    assert app.max_live_sessions(app.parse_args([]), "cuda") == 2
    assert app.max_live_sessions(app.parse_args(["--max-live-sessions", "5"]), "cpu") == 5
    monkeypatch.setenv("TURBONEXT_MAX_LIVE_SESSIONS", "3")
    assert app.max_live_sessions(app.parse_args([]), "cuda") == 3
    with pytest.raises(SystemExit):
        app.parse_args(["--max-live-sessions", "0"])


def test_a_missing_pose_extra_is_named_at_the_top_of_the_page(monkeypatch):
    import importlib.util

    assert app.missing_pose_notice() is None  # the test extras install both backends
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert "pip install 'turbonext[app,pose]'" in app.missing_pose_notice()


def test_readme_installs_what_both_tabs_need_and_tells_cpu_users_about_torch():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert 'pip install -e ".[app,pose]" && python app.py' in readme
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme
    assert "pip install -e . && turbonext generate" in readme  # the two set-up commands stay as they were
    assert 'pip install -e ".[test,pose]" && python -m pytest -q -rfEs --require-all' in readme


def test_command_line_stream_settings_reach_the_webcam_stream(tiny_model, monkeypatch, tmp_path):
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
    h = app.Handlers(tiny_model, detector_factory=FakeDetector, live_kwargs={**LIVE, **settings}, frames_root=tmp_path)
    live, _, status = h.set_reference(webcam_frame(7, 80, 60), None)
    try:  # the stream's UNet is wrapped by torch.compile (compiled lazily, on its first frame: not run here)
        session = live.runner.session.session
        assert session.per_level == 1 and session.unet is not tiny_model.unet
        assert session.unet._orig_mod is tiny_model.unet and "torch.compile" in status
    finally:
        live.close()


def test_upload_tab_through_gradio_client(tiny_model, tmp_path):
    """The app launched locally and driven as a user would through its API: a good photo and video, a built-in
    motion instead of a video, and the sentences a bad photo, a video with nobody in it and no video give."""
    from gradio_client import Client, handle_file

    from turbonext.data.video_io import write_video

    ref = tmp_path / "ref.png"
    Image.fromarray(webcam_frame(3, 80, 60)).save(ref)
    bad = tmp_path / "notes.png"
    bad.write_text("I am text")
    clip, empty_room = tmp_path / "driving.mp4", tmp_path / "empty_room.mp4"
    write_video(clip, [webcam_frame(i, 48, 64) for i in range(6)], fps=12)
    write_video(empty_room, [np.zeros((48, 64, 3), np.uint8)] * 4, fps=12)
    demo = app.build_demo(tiny_model, detector_factory=FakeDetector)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        video, preview, status, _, _ = client.predict(handle_file(str(ref)), handle_file(str(clip)), 2, 8,
                                                api_name="/generate")
        path = Path(video["video"] if isinstance(video, dict) else video)
        assert path.is_file() and path.stat().st_size > 0 and Path(preview).is_file() and "Done: 6 frames" in status
        video, _, status, _, _ = client.predict(handle_file(str(ref)), None, 2, 8, "dance", api_name="/generate")
        assert "Done: 8 frames" in status and "24 frames/s" in status
        _, _, status, made, files = client.predict(None, None, 1, 8, "dance", app.MODEL_OWN_MODE, "a dancer in a red dress",
                                                   api_name="/generate")  # no photo: the person made from the text
        assert "made from your description" in status and Path(made).is_file()
        assert sorted(Path(f["path"] if isinstance(f, dict) else f).suffix for f in files) == [".gif", ".mp4"]
        for args, says in [((handle_file(str(ref)), None, 2, 8), "No driving video yet"),  # AppError: gr.Error's text
                           ((handle_file(str(bad)), handle_file(str(clip)), 2, 8), "'notes.png' could not be read as an image"),
                           ((handle_file(str(ref)), handle_file(str(empty_room)), 2, 8), "No person was found")]:
            with pytest.raises(Exception, match=says):
                client.predict(*args, api_name="/generate")
        _, status = client.predict(handle_file(str(bad)), api_name="/set_reference")
        assert "'notes.png' could not be read as an image" in status  # a sentence in the status, not "Error"
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
