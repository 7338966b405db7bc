"""Model components of turbonext: diffusers ModelMixin/ConfigMixin classes and the reference attention
that connects the ReferenceNet to the main UNet. Nothing here knows a pipeline or a stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "PoseGuider": "turbonext.models.pose_guider",
    "TurboNextUNetMotionModel": "turbonext.models.unet_motion",
    "ReferenceCache": "turbonext.models.reference_attention",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.models.pose_guider import PoseGuider
    from turbonext.models.reference_attention import ReferenceCache
    from turbonext.models.unet_motion import TurboNextUNetMotionModel
