"""Live pose transfer: :class:`StreamSession` (pipelined denoising, frame in, frames out), the
:class:`LatestFrameRunner` that feeds it from a live source, :class:`LivePoseMaps` (detected people -> the pose
map that drives it: the largest person, or everyone) and the :class:`TickProfiler`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "StreamSession": "turbonext.streaming.session",
    "StreamStats": "turbonext.streaming.session",
    "COMPILE_MODES": "turbonext.streaming.session",
    "CUDA_GRAPH_MODES": "turbonext.streaming.session",
    "LatestFrameRunner": "turbonext.streaming.runner",
    "LivePoseMaps": "turbonext.streaming.live_poses",
    "PEOPLE_MODES": "turbonext.streaming.live_poses",
    "TickProfiler": "turbonext.streaming.profiler",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.streaming.live_poses import PEOPLE_MODES, LivePoseMaps
    from turbonext.streaming.profiler import TickProfiler
    from turbonext.streaming.runner import LatestFrameRunner
    from turbonext.streaming.session import COMPILE_MODES, CUDA_GRAPH_MODES, StreamSession, StreamStats
