"""The pipeline: :class:`TurboNextPipeline` (clips and streams), its output, and loading one ready to render."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "TurboNextPipeline": "turbonext.pipelines.pipeline_turbonext",
    "TurboNextPipelineOutput": "turbonext.pipelines.pipeline_output",
    "load_for_inference": "turbonext.pipelines.inference",
    "build_random_pipeline": "turbonext.pipelines.presets",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.pipelines.inference import load_for_inference
    from turbonext.pipelines.pipeline_output import TurboNextPipelineOutput
    from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
    from turbonext.pipelines.presets import build_random_pipeline
