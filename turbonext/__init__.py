"""turbonext: real-time pose transfer (one reference photo + a pose sequence -> video)."""

from __future__ import annotations

from turbonext.lazy_imports import lazy_getattr
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public names -> the module that defines them. Imported lazily so that light submodules
# (turbonext.pose, turbonext.synthetic, the CLI) do not pay for importing diffusers.
_LAZY = {
    "TurboNextPipeline": "turbonext.pipeline_turbonext",
    "TurboNextPipelineOutput": "turbonext.pipeline_turbonext",
    "PoseGuider": "turbonext.models.pose_guider",
    "TurboNextUNetMotionModel": "turbonext.models.unet_motion",
    "ReferenceCache": "turbonext.models.reference_attention",
    "StreamSession": "turbonext.streaming",
}

__all__ = sorted(_LAZY) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from turbonext.models.pose_guider import PoseGuider
    from turbonext.models.reference_attention import ReferenceCache
    from turbonext.models.unet_motion import TurboNextUNetMotionModel
    from turbonext.pipeline_turbonext import TurboNextPipeline, TurboNextPipelineOutput
    from turbonext.streaming import StreamSession
