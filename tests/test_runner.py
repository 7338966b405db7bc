"""LatestFrameRunner fed faster than the model: the newest frame wins, also on the app path (``prepare=``)."""

import threading
import time

import pytest

from turbonext.streaming.runner import LatestFrameRunner


class SlowSession:
    """Stands in for a StreamSession: each step takes ``delay`` s and echoes the frame."""

    def __init__(self, delay, on_step=None):
        self.delay, self.seen, self.on_step = delay, [], on_step

    def step(self, frame):
        if self.on_step is not None:
            self.on_step(frame)
        time.sleep(self.delay)
        self.seen.append(frame)
        return [frame]


@pytest.mark.parametrize("with_prepare", [True, False], ids=["prepare", "no-prepare"])
def test_the_model_always_works_on_the_newest_frame(with_prepare):
    """Every frame the runner takes (into ``prepare``, or into the session without it) was the newest one
    submitted at that moment (1 frame of slack for thread scheduling); the last frame is rendered. A runner
    that kept the OLDEST waiting frame instead would make the model work ever-stale frames and never
    render the last one."""
    lock = threading.Lock()
    newest = 0  # the number of the newest submitted frame
    taken = []  # (frame, newest at the moment the runner took it)

    def note(frame):
        with lock:
            taken.append((frame, newest))

    def prepare(frame):
        note(frame)
        time.sleep(0.005)  # e.g. pose detection
        return frame + 1000

    session = SlowSession(0.08, on_step=None if with_prepare else note)
    last = 40
    with LatestFrameRunner(session, prepare=prepare if with_prepare else None) as runner:
        for i in range(1, last + 1):
            with lock:  # ``newest`` and the runner's slot change together
                newest = i
                runner.submit(i)
            time.sleep(0.01)  # 100 fps in, ~12 fps model: most frames must be dropped
        deadline = time.time() + 3
        offset = 1000 if with_prepare else 0
        while (not session.seen or session.seen[-1] != last + offset) and time.time() < deadline:
            time.sleep(0.01)
    assert runner.error is None
    raw_seen = [f - 1000 for f in session.seen] if with_prepare else session.seen
    stale = [(frame, at) for frame, at in taken if at - frame > 1]
    assert not stale, f"frames taken when newer ones were waiting (frame, newest): {stale}"
    assert raw_seen[-1] == last, raw_seen  # the newest frame gets rendered
    assert raw_seen == sorted(raw_seen) and len(raw_seen) < last // 2  # stale frames dropped, in order
    assert set(raw_seen) <= {frame for frame, _ in taken}  # the model only sees frames the runner took
