"""Isolation between concurrent app users on one shared pipeline: no frame or reference ever crosses.

* Upload tab, through gradio_client against a locally launched app: 2 and 4 users at once, each with their own
  reference photo and driving clip; every user's MP4 is decoded and must equal, pixel for pixel, the same
  request run alone (the clip job's seed is fixed).
* Webcam tab, its handlers called as functions from one thread per user: each user streams their own webcam
  picture against their own reference, with their own fixed noise seed; every rendered frame a user is shown must
  be one of the frames the same user gets streaming alone, and none of any other user's.
* A session's memory is released when it ends (weak references, after ``leave`` / the State's delete callback).

The browser version of the Webcam check (two browser contexts against ``python app.py``) is in tests/test_browser.py
(marked ``browser``; see RELIABILITY.md).
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


gr = pytest.importorskip("gradio")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py lives in the repo root

from test_live import FakeDetector, webcam_frame  # noqa: E402

import app  # noqa: E402
from turbonext.data.video_io import iter_frames, write_video  # noqa: E402


LIVE = dict(num_inference_steps=1, window=4, frames_per_level=1)


@pytest.fixture(scope="module")
def pipe(tiny_pipe_factory):
    return tiny_pipe_factory()


def handlers_for(pipe, folder, users: int):
    wanted = dict(detector_factory=FakeDetector, live_kwargs=LIVE, frames_root=folder, max_live_sessions=users)
    accepted = inspect.signature(app.Handlers).parameters
    return app.Handlers(pipe, **{k: v for k, v in wanted.items() if k in accepted})


def decode(path) -> np.ndarray:
    _, frames = iter_frames(path)
    return np.stack([frame for _, _, frame in frames])


# ------------------------------------------------------------------------------------------ Upload tab
@pytest.fixture(scope="module")
def upload_inputs(tmp_path_factory):
    """Four users' files: a reference photo and a driving clip each, all different."""
    folder = tmp_path_factory.mktemp("users")
    users = []
    for user in range(4):
        ref = folder / f"user{user}.png"
        Image.fromarray(webcam_frame(100 + user, 80, 60)).save(ref)
        clip = folder / f"user{user}.mp4"
        write_video(clip, [webcam_frame(10 * user + i, 48, 64) for i in range(4)], fps=12)
        users.append((ref, clip))
    return users


@pytest.fixture(scope="module")
def client(pipe):
    kwargs = dict(detector_factory=FakeDetector, live_kwargs=LIVE, max_live_sessions=4)
    accepted = inspect.signature(app.build_demo).parameters
    demo = app.build_demo(pipe, **{k: v for k, v in kwargs.items() if k in accepted})
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        from gradio_client import Client

        yield lambda: Client(demo.local_url, verbose=False)  # one Client per user: a session each
    finally:
        demo.close()


def upload_request(make_client, ref, clip):
    from gradio_client import handle_file

    video, *_ = make_client().predict(handle_file(str(ref)), handle_file(str(clip)), 1, 8, api_name="/generate")
    return decode(video["video"] if isinstance(video, dict) else video)


@pytest.fixture(scope="module")
def alone(client, upload_inputs):
    """Every user's clip, rendered with nobody else on the app."""
    return [upload_request(client, ref, clip) for ref, clip in upload_inputs]


def run_users_at_once(users: int, work, timeout: float = 120) -> list[BaseException]:
    """``work(i)`` for every user ``i`` in its own thread, all released together by a barrier; the errors raised
    (reported in the test's thread by the caller)."""
    errors: list[BaseException] = []
    start = threading.Barrier(users)

    def user(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors


@pytest.mark.slow  # launching the app and rendering every user's clip alone first: ~7 s on 2 cores
@pytest.mark.parametrize("users", [2, 4])
def test_upload_users_at_once_get_exactly_their_own_clip(client, upload_inputs, alone, users):
    assert all(not np.array_equal(alone[0], other) for other in alone[1:])  # the users' clips do differ
    results: dict[int, np.ndarray] = {}
    errors = run_users_at_once(users, lambda i: results.__setitem__(i, upload_request(client, *upload_inputs[i])))
    assert not errors and len(results) == users
    for index in range(users):
        np.testing.assert_array_equal(results[index], alone[index], err_msg=f"user {index}'s clip changed")


# ------------------------------------------------------------------------------------------ Webcam tab
class _User(threading.local):
    seed = 0


CURRENT = _User()


@pytest.fixture
def seeded_sessions(monkeypatch):
    """Each user's live stream draws its noise from its own generator, seeded per user (a fixed seed), so a
    user's frames do not depend on who else is streaming; the app makes sessions through ``app.LiveSession``."""
    base = app.LiveSession

    class SeededLiveSession(base):
        def __init__(self, *args, **kwargs):
            kwargs["generator"] = torch.Generator().manual_seed(CURRENT.seed)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(app, "LiveSession", SeededLiveSession)


def _digest(path: str) -> str:
    return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()


def webcam_user(h, user: int, renders: int, shown: list, poses: set, timeout: float = 60.0) -> int:
    """One user: their reference, then their own webcam picture until ``renders`` frames were rendered (or seen
    when ``renders`` is 0: stop after 5 shown). Returns the number of frames rendered for them."""
    CURRENT.seed = 1000 + user
    live, seen, status = h.set_reference(webcam_frame(200 + user, 80, 60), None)
    assert live is not None and live.runner is not None, status
    frame = webcam_frame(300 + user)  # a still user: every pose map is the same, whatever frames are skipped
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            result, pose, _ = h.stream(frame, live)
            if isinstance(result, str):
                shown.append(_digest(result))
            if isinstance(pose, str):
                poses.add(_digest(pose))
            done = live.runner.processed
            if (renders and done >= renders) or (not renders and len(shown) >= 5):
                return done
            time.sleep(0.005)
        raise AssertionError(f"user {user}: the stream gave {len(shown)} frames in {timeout} s")
    finally:
        app.close_live(live)


@pytest.mark.parametrize("users", [2, pytest.param(4, marks=pytest.mark.slow)])  # 4 users: ~8 s on 2 cores
def test_webcam_users_at_once_see_only_their_own_frames(pipe, tmp_path, seeded_sessions, users):
    h = handlers_for(pipe, tmp_path, users)
    shown = {u: [] for u in range(users)}
    poses = {u: set() for u in range(users)}
    rendered: dict[int, int] = {}
    errors = run_users_at_once(users, lambda i: rendered.__setitem__(i, webcam_user(h, i, 0, shown[i], poses[i])))
    assert not errors, errors
    alone_shown, alone_poses = {}, {}
    h = handlers_for(pipe, tmp_path, users)  # fresh seats: the streams above hold theirs until an idle timeout
    for index in range(users):  # each user again, alone, for at least as many rendered frames
        frames, maps = [], set()
        webcam_user(h, index, rendered[index] + 2, frames, maps)
        alone_shown[index], alone_poses[index] = set(frames), maps
    for index in range(users):
        mine = set(shown[index])
        assert mine and mine <= alone_shown[index], f"user {index} was shown a frame they never get alone"
        assert poses[index] == alone_poses[index], f"user {index}'s pose maps changed"
        for other in range(users):
            if other != index:
                assert not mine & alone_shown[other], f"user {index} was shown user {other}'s frame"


# -------------------------------------------------------------------------------------- memory release
class FakeRequest:
    def __init__(self, session_hash: str):
        self.session_hash = session_hash


def test_a_live_session_is_released_when_it_ends(pipe, tmp_path):
    h = handlers_for(pipe, tmp_path, 2)
    refs, folders, threads = [], [], []
    for user, ending in enumerate(["leave", "delete callback"]):
        request = FakeRequest(f"session-{user}")
        params = inspect.signature(h.set_reference).parameters
        extra = {"request": request} if "request" in params else {}
        live, _, _ = h.set_reference(webcam_frame(200 + user, 80, 60), None, **extra)
        for i in range(40):
            h.stream(webcam_frame(i), live, **extra)
            time.sleep(0.01)
        refs.append((weakref.ref(live), weakref.ref(live.runner.session.session)))
        threads += live.runner._threads
        folder = getattr(getattr(live, "_frame_files", None), "folder", None)
        folders.append(folder)
        if ending == "leave" and hasattr(h, "leave"):
            h.leave(request)  # the page was closed or reloaded
        else:
            app.close_live(live)  # Gradio deletes the session's State
        del live
    gc.collect()
    for session, stream in refs:
        assert session() is None, f"a LiveSession is still referenced: {gc.get_referrers(session())[:3]}"
        assert stream() is None
    assert all(folder is None or not Path(folder).exists() for folder in folders)  # its picture files are gone
    assert not [t for t in threads if t.is_alive()]  # its worker threads have ended
