"""What the app and the command line run, free of any UI: a live webcam session, an offline clip, the
driving inputs (videos, pose folders, the built-in synthetic motions), the checks of user uploads, the seats
that cap concurrent live streams, a user's render options on a shared pipeline (mode, style LoRAs), and the
app's offline examples."""

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
    "builtin_motion_poses": "turbonext.jobs.driving_inputs",
    "read_image_upload": "turbonext.jobs.uploads",
    "LiveSeats": "turbonext.jobs.sharing",
    "example_files": "turbonext.jobs.examples",
    "StyleLora": "turbonext.jobs.options",
    "applied_options": "turbonext.jobs.options",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.jobs.clip import render_clip
    from turbonext.jobs.driving_inputs import (
        builtin_motion_poses,
        poses_from_folder,
        poses_from_video,
        synthetic_demo_inputs,
    )
    from turbonext.jobs.examples import example_files
    from turbonext.jobs.live import LiveSession
    from turbonext.jobs.options import StyleLora, applied_options
    from turbonext.jobs.reference import prepare_reference
    from turbonext.jobs.sharing import LiveSeats
    from turbonext.jobs.uploads import read_image_upload
