"""Deprecated module path (turbonext 0.1): use ``from turbonext import TurboNextPipeline``. Removed in 0.3."""

import warnings

from turbonext.pipelines.pipeline_output import TurboNextPipelineOutput
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline


__all__ = ["TurboNextPipeline", "TurboNextPipelineOutput"]
warnings.warn("turbonext.pipeline_turbonext moved to turbonext.pipelines.pipeline_turbonext (or import from "
              "turbonext); the old path goes away in turbonext 0.3.", DeprecationWarning, stacklevel=2)
