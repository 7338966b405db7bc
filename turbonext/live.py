"""Deprecated module path (turbonext 0.1): use :mod:`turbonext.jobs.live` and :mod:`turbonext.jobs.reference`.
Removed in 0.3."""

import warnings

from turbonext.jobs.live import LiveSession
from turbonext.jobs.reference import PreparedReference, prepare_reference, reference_pose_for


__all__ = ["LiveSession", "PreparedReference", "prepare_reference", "reference_pose_for"]
warnings.warn("turbonext.live moved to turbonext.jobs.live and turbonext.jobs.reference; the old path goes away "
              "in turbonext 0.3.", DeprecationWarning, stacklevel=2)
