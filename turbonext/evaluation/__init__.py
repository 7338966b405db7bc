"""Evaluation: image and video metrics, :func:`evaluate` on held-out synthetic sequences, ablations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "evaluate": "turbonext.evaluation.held_out",
    "CopyReferenceBaseline": "turbonext.evaluation.held_out",
    "evaluate_ablations": "turbonext.evaluation.ablations",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.evaluation.ablations import evaluate_ablations
    from turbonext.evaluation.held_out import CopyReferenceBaseline, evaluate
