"""One machine shared by several users (app sessions, clip jobs): the lock that serialises a pipeline's use,
and the seats that cap how many live streams run at once."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Callable, Hashable


_LOCKS: "weakref.WeakKeyDictionary[object, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipe) -> threading.RLock:
    """The lock that serialises every use of ``pipe`` (its reference cache is shared state)."""
    with _LOCKS_GUARD:
        if pipe not in _LOCKS:
            _LOCKS[pipe] = threading.RLock()
        return _LOCKS[pipe]


class MachineBusy(RuntimeError):
    """Every live seat is taken; the message is meant for the user."""


_SHARES = {2: "half the", 3: "a third of the", 4: "a quarter of the"}


def sharing_notice(streaming: int) -> str | None:
    """What a live user should know when ``streaming`` people (them included) share the machine; None alone."""
    if streaming < 2:
        return None
    share = _SHARES.get(streaming, f"1/{streaming} of the")
    return f"{streaming} people are streaming: each gets about {share} speed."


class LiveSeats:
    """At most ``capacity`` live streams at a time (the model serves them in turn, so each extra one slows
    every other down).

    A stream holds its seat while it sends frames: :meth:`claim` on every frame (it refreshes the seat),
    :meth:`release` when its user leaves. A seat whose stream sent nothing for ``idle_timeout`` seconds (the
    webcam stopped, the tab closed without a word) is free again.
    """

    def __init__(self, capacity: int, idle_timeout: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"the number of live sessions must be an integer >= 1; got {capacity!r}.")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be > 0 seconds; got {idle_timeout}.")
        self.capacity, self.idle_timeout, self.clock = capacity, idle_timeout, clock
        self._seats: dict[Hashable, float] = {}  # key -> last frame time
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for key in [k for k, seen in self._seats.items() if now - seen > self.idle_timeout]:
            del self._seats[key]

    def claim(self, key: Hashable) -> int:
        """Take or refresh ``key``'s seat; returns how many streams hold one (``key`` included). Raises
        :class:`MachineBusy` (a message for the user) when every seat is taken by another stream."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            if key not in self._seats and len(self._seats) >= self.capacity:
                people = "person is" if self.capacity == 1 else "people are"
                raise MachineBusy(f"The machine is busy: {len(self._seats)} {people} streaming, the most it serves "
                                  f"at once. Try again in a minute.")
            self._seats[key] = now
            return len(self._seats)

    def release(self, key: Hashable) -> None:
        """Free ``key``'s seat (a no-op if it holds none)."""
        with self._lock:
            self._seats.pop(key, None)

    def streaming(self) -> int:
        """How many streams hold a seat now."""
        with self._lock:
            self._expire(self.clock())
            return len(self._seats)
