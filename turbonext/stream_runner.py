"""Feeding a StreamSession from a live source that may be faster than the model: latest frame wins.

:class:`LatestFrameRunner` runs the session on a worker thread. ``submit`` never blocks and never
queues: a frame not yet taken by the worker is replaced by the newer one (and counted as dropped).
Outputs go to a bounded buffer, so nothing grows without bound however long the stream runs.
"""

from __future__ import annotations

import collections
import threading


class LatestFrameRunner:
    """Run ``session.step`` on the newest submitted frame, dropping stale ones."""

    def __init__(self, session, max_outputs: int = 4):
        self.session = session
        self.outputs: collections.deque = collections.deque(maxlen=max_outputs)
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.error: Exception | None = None
        self._latest = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="turbonext-stream", daemon=True)
        self._thread.start()

    def submit(self, frame) -> None:
        """Offer a new pose frame; replaces a frame the worker has not taken yet."""
        if self.error is not None:
            raise RuntimeError(f"the stream worker failed: {self.error}") from self.error
        with self._lock:
            if self._latest is not None:
                self.dropped += 1
            self._latest = frame
            self.submitted += 1
        self._wake.set()

    def next_output(self):
        """The oldest rendered frame not yet taken (or None): for a display that shows one frame per
        input frame. A session emits frames in bursts (``frames_per_level`` per UNet call); taking them
        one at a time plays every rendered frame instead of only the last of each burst. The buffer is
        bounded (``max_outputs``), so a display that falls behind skips frames rather than lagging."""
        with self._lock:
            return self.outputs.popleft() if self.outputs else None

    def latest_output(self):
        """The newest rendered frame (or None if none yet); older ready frames are discarded."""
        with self._lock:
            if not self.outputs:
                return None
            frame = self.outputs[-1]
            self.outputs.clear()
            return frame

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.1)
            with self._lock:
                frame, self._latest = self._latest, None
                self._wake.clear()
            if frame is None:
                continue
            try:
                frames = self.session.step(frame)
            except Exception as err:  # any failure of the model is surfaced to the caller by the next submit()
                self.error = err
                return
            with self._lock:
                self.processed += 1
                self.outputs.extend(frames)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def __enter__(self) -> "LatestFrameRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
