"""Deprecated module path (turbonext 0.1): its names moved to :mod:`turbonext.loaders.hub`,
:func:`turbonext.load_for_inference` and :func:`turbonext.utils.devices.default_device`. Removed in 0.3."""

import warnings

from turbonext.loaders.hub import DEMO_MODEL_NAME, MissingWeightsError, resolve_pretrained_path
from turbonext.pipelines.inference import load_for_inference
from turbonext.utils.devices import default_device


__all__ = ["DEMO_MODEL_NAME", "MissingWeightsError", "default_device", "load_for_inference", "resolve_pretrained_path"]
warnings.warn("turbonext.loading moved to turbonext.loaders.hub / turbonext.load_for_inference; the old path goes "
              "away in turbonext 0.3.", DeprecationWarning, stacklevel=2)
