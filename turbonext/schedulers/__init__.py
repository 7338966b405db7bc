"""Schedulers: the per-frame LCM update that advances frames at staggered noise levels in one call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "StaggeredLCMSchedule": "turbonext.schedulers.scheduling_staggered_lcm",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.schedulers.scheduling_staggered_lcm import StaggeredLCMSchedule
