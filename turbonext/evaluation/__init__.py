"""Evaluation: image and video metrics, :func:`evaluate` on held-out synthetic sequences (with the
copy-reference and black-frame baselines beside the model), ablations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "evaluate": "turbonext.evaluation.held_out",
    "format_table": "turbonext.evaluation.held_out",
    "BlackFrameBaseline": "turbonext.evaluation.held_out",
    "CopyReferenceBaseline": "turbonext.evaluation.held_out",
    "evaluate_ablations": "turbonext.evaluation.ablations",
    "format_ablation_table": "turbonext.evaluation.ablations",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.evaluation.ablations import evaluate_ablations, format_ablation_table
    from turbonext.evaluation.held_out import BlackFrameBaseline, CopyReferenceBaseline, evaluate, format_table
