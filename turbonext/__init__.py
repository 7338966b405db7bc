"""turbonext: real-time pose transfer (one reference photo + a pose sequence -> video).

The public API, imported lazily so that light subpackages (:mod:`turbonext.pose`,
:mod:`turbonext.synthetic`, the command line) do not pay for importing diffusers::

    from turbonext import TurboNextPipeline, StreamSession, load_for_inference
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


__version__ = "0.2.0.dev0"

# Public names -> the module that defines them.
_LAZY = {
    "TurboNextPipeline": "turbonext.pipelines.pipeline_turbonext",
    "TurboNextPipelineOutput": "turbonext.pipelines.pipeline_output",
    "load_for_inference": "turbonext.pipelines.inference",
    "PoseGuider": "turbonext.models.pose_guider",
    "TurboNextUNetMotionModel": "turbonext.models.unet_motion",
    "ReferenceCache": "turbonext.models.reference_attention",
    "StreamSession": "turbonext.streaming.session",
    "LatestFrameRunner": "turbonext.streaming.runner",
    "LiveSession": "turbonext.jobs.live",
}

__all__ = sorted(_LAZY) + ["__version__"]

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.jobs.live import LiveSession
    from turbonext.models.pose_guider import PoseGuider
    from turbonext.models.reference_attention import ReferenceCache
    from turbonext.models.unet_motion import TurboNextUNetMotionModel
    from turbonext.pipelines.inference import load_for_inference
    from turbonext.pipelines.pipeline_output import TurboNextPipelineOutput
    from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
    from turbonext.streaming.runner import LatestFrameRunner
    from turbonext.streaming.session import StreamSession
