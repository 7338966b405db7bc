"""What the app and the command line run, free of any UI: a live webcam session, an offline clip, and
the driving inputs (videos, pose folders, the built-in synthetic motion)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "LiveSession": "turbonext.jobs.live",
    "render_clip": "turbonext.jobs.clip",
    "prepare_reference": "turbonext.jobs.reference",
    "poses_from_video": "turbonext.jobs.driving_inputs",
    "poses_from_folder": "turbonext.jobs.driving_inputs",
    "synthetic_demo_inputs": "turbonext.jobs.driving_inputs",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.jobs.clip import render_clip
    from turbonext.jobs.driving_inputs import poses_from_folder, poses_from_video, synthetic_demo_inputs
    from turbonext.jobs.live import LiveSession
    from turbonext.jobs.reference import prepare_reference
