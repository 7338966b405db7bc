"""Ablations that show what each module carries: the reference attention (appearance) and the pose
guider (pose). ``turbonext eval --ablations`` scores the model as it is and with each one switched off."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch

from turbonext.evaluation.metrics import METRIC_KEYS


@contextlib.contextmanager
def reference_attention_disabled(pipe) -> Iterator[None]:
    """The main UNet's self-attention ignores the reference tokens (the ReferenceNet still runs)."""
    before = pipe.reference_state.enabled
    pipe.reference_state.enabled = False
    try:
        yield
    finally:
        pipe.reference_state.enabled = before


def pose_guider_zeroed(pipe) -> contextlib.AbstractContextManager:
    """The pose guider's output is zero (its zero conv set to zero), so the pose cannot steer."""
    return _zeroed(pipe.pose_guider.zero_conv)


def reference_pose_zeroed(pipe) -> contextlib.AbstractContextManager:
    """The reference's pose features are zero (the guider's reference branch set to zero): the
    ReferenceNet sees the reference image only, as in a model without the branch."""
    return _zeroed(pipe.pose_guider.reference_zero_conv)


@contextlib.contextmanager
def _zeroed(conv: torch.nn.Module) -> Iterator[None]:
    """``conv``'s parameters are zero inside the block and restored after it."""
    saved = [p.detach().clone() for p in conv.parameters()]
    with torch.no_grad():
        for p in conv.parameters():
            p.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(conv.parameters(), saved):
                p.copy_(s)


ABLATIONS: dict[str, Callable[[Any], contextlib.AbstractContextManager]] = {
    "full model": lambda pipe: contextlib.nullcontext(),
    "no reference attention": reference_attention_disabled,
    "pose guider zeroed": pose_guider_zeroed,
}
REFERENCE_POSE_ABLATION = "reference pose zeroed"  # only for models that read the reference pose


def ablations_for(pipe) -> dict[str, Callable[[Any], contextlib.AbstractContextManager]]:
    """The ablations that apply to ``pipe``: :data:`ABLATIONS`, plus the reference pose one where it reads it."""
    if getattr(pipe, "reads_reference_pose", False):
        return {**ABLATIONS, REFERENCE_POSE_ABLATION: reference_pose_zeroed}
    return dict(ABLATIONS)


def evaluate_ablations(pipe, evaluate_fn: Callable[..., dict], **kwargs) -> dict[str, dict]:
    """``evaluate_fn(pipe, **kwargs)`` for the model and each ablation that applies to it; {name: result}."""
    results = {}
    for name, ablate in ablations_for(pipe).items():
        if hasattr(pipe, "clear_reference"):
            pipe.clear_reference()  # every variant computes its own reference pass
        with ablate(pipe):
            results[name] = evaluate_fn(pipe, **kwargs)
    return results


def format_ablation_table(results: dict[str, dict]) -> str:
    """Markdown: one row per variant with the mean metrics."""
    keys = [k for k in METRIC_KEYS if all(k in r["metrics"] for r in results.values())]
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in results.items():
        cells = [f"{r['metrics'][k]:.4f}" if r["metrics"][k] is not None else "-" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
