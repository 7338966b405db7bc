"""Feeding a StreamSession from a live source that may be faster than the model: latest frame wins.

:class:`LatestFrameRunner` runs the session on a worker thread. ``submit`` never blocks and never
queues: a frame not yet taken by the worker is replaced by the newer one (and counted as dropped).
Outputs go to a bounded buffer, so nothing grows without bound however long the stream runs.

With ``prepare`` (e.g. pose detection: webcam frame -> pose map), raw frames are prepared lazily on a
second thread, only when the worker has taken the previous prepared frame: a frame that would be
replaced anyway is never prepared (at a 12.5 fps webcam and a 3 fps model, detecting every frame
spent 4 of 5 detections on frames the model never saw), and preparation still overlaps the model's
work. The price: a prepared frame can wait up to one model step before the worker takes it.
"""

from __future__ import annotations

import collections
import threading


class LatestFrameRunner:
    """Run ``session.step`` on the newest submitted frame, dropping stale ones."""

    def __init__(self, session, max_outputs: int = 4, prepare=None):
        self.session, self.prepare = session, prepare
        self.outputs: collections.deque = collections.deque(maxlen=max_outputs)
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.error: Exception | None = None
        self.prepare_error: Exception | None = None  # the last frame whose preparation failed (one-shot)
        self._latest = None  # the next frame for the model (prepared)
        self._raw = None  # with ``prepare``: the newest frame not yet prepared
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._room = threading.Event()  # with ``prepare``: a raw frame waits, or the model's slot emptied
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name="turbonext-stream", daemon=True)]
        if prepare is not None:
            self._threads.append(threading.Thread(target=self._prepare_loop, name="turbonext-prepare", daemon=True))
        for thread in self._threads:
            thread.start()

    def submit(self, frame) -> None:
        """Offer a new frame; replaces a frame not taken yet (by the worker, or by ``prepare``)."""
        if self.error is not None:
            raise RuntimeError(f"the stream worker failed: {self.error}") from self.error
        failed, self.prepare_error = self.prepare_error, None
        if failed is not None:  # one frame's preparation (pose detection) failed; the next frames are served
            raise RuntimeError(f"preparing a frame failed (it was skipped): {failed}") from failed
        with self._lock:
            if self.prepare is None:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = frame
            else:
                if self._raw is not None:
                    self.dropped += 1
                self._raw = frame
            self.submitted += 1
        if self.prepare is None:
            self._wake.set()
        else:
            self._room.set()

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

    def _prepare_loop(self) -> None:
        while not self._stop.is_set():
            self._room.wait(timeout=0.1)
            with self._lock:
                self._room.clear()
                if self._raw is None or self._latest is not None:  # nothing new, or the model is not ready
                    continue
                raw, self._raw = self._raw, None
            try:
                prepared = self.prepare(raw)
            except Exception as err:  # one bad frame: reported once by the next submit(), the stream goes on
                self.prepare_error = err
                continue
            with self._lock:
                self._latest = prepared
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.1)
            with self._lock:
                frame, self._latest = self._latest, None
                self._wake.clear()
            if frame is None:
                continue
            self._room.set()  # the slot is free: prepare the newest raw frame while the model works
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
        self._room.set()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> "LatestFrameRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
