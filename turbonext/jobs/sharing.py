"""One pipeline shared by several users (app sessions, clip jobs): the lock that serialises its use."""

from __future__ import annotations

import threading
import weakref


_LOCKS: "weakref.WeakKeyDictionary[object, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipe) -> threading.RLock:
    """The lock that serialises every use of ``pipe`` (its reference cache is shared state)."""
    with _LOCKS_GUARD:
        if pipe not in _LOCKS:
            _LOCKS[pipe] = threading.RLock()
        return _LOCKS[pipe]
