"""Ablations that show what each module carries. ``turbonext eval --ablations`` scores the model as it
is and with each one applied, on the same scenes, and reports each variant's mean and spread over
identities and in how many identities the full model beats it ("helps in k of n identities").

Each :class:`Ablation` is called on the pipe and returns a context manager (a module switched off
inside it) and may add :func:`~turbonext.evaluation.held_out.evaluate` arguments (the pose-shuffled
one changes the model's input, not the model):

* "no reference attention": the UNet ignores the reference tokens: what the reference carries (colours).
* "pose guider zeroed": the pose guider outputs zero. The output goes black, so this shows only that
  the model draws nothing without a pose, not that it follows the pose.
* "pose shuffled": the model gets another identity's clip's poses and is scored against the true
  frames: IoU falls as far as the model follows the pose it is given.
* "reference pose zeroed" (models that read the reference pose only).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch

from turbonext.evaluation.held_out import identities_better
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


def _unchanged(pipe) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Ablation:
    """One variant: ``ablation(pipe)`` is the context manager to evaluate it in, ``evaluate_kwargs``
    are added to the evaluation's arguments, ``shows`` says what the row shows, and ``needs`` names
    the pipe attribute it switches (a pipe without it, e.g. a baseline, skips the ablation)."""

    shows: str
    switch: Callable[[Any], contextlib.AbstractContextManager] = _unchanged
    evaluate_kwargs: Mapping[str, Any] = field(default_factory=dict)
    needs: str | None = None

    def __call__(self, pipe) -> contextlib.AbstractContextManager:
        return self.switch(pipe)

    def applies_to(self, pipe) -> bool:
        return self.needs is None or hasattr(pipe, self.needs)


ABLATIONS: dict[str, Ablation] = {
    "full model": Ablation("the model as it is"),
    "no reference attention": Ablation(
        "what the reference attention carries: the colours (compare color_error)",
        reference_attention_disabled, needs="reference_state"),
    "pose guider zeroed": Ablation(
        "output goes black: the model draws nothing without pose (NOT evidence that it follows the pose)",
        pose_guider_zeroed, needs="pose_guider"),
    "pose shuffled": Ablation(
        "another identity's clip's poses, scored against the true frames: IoU falls if the pose is followed",
        evaluate_kwargs={"poses": "shuffled"}),
}
REFERENCE_POSE_ABLATION = "reference pose zeroed"  # only for models that read the reference pose
REFERENCE_POSE = Ablation("what the reference's pose features carry", reference_pose_zeroed, needs="pose_guider")


def ablations_for(pipe) -> dict[str, Ablation]:
    """The ablations that apply to ``pipe``: those of :data:`ABLATIONS` whose module it has, plus the
    reference pose one where it reads the reference pose."""
    found = {name: a for name, a in ABLATIONS.items() if a.applies_to(pipe)}
    if getattr(pipe, "reads_reference_pose", False):
        found[REFERENCE_POSE_ABLATION] = REFERENCE_POSE
    return found


def evaluate_ablations(pipe, evaluate_fn: Callable[..., dict], **kwargs) -> dict[str, dict]:
    """``evaluate_fn(pipe, **kwargs)`` for the model and each ablation that applies to it (with the
    ablation's own arguments added); {name: result}, "full model" first."""
    results = {}
    for name, ablation in ablations_for(pipe).items():
        if hasattr(pipe, "clear_reference"):
            pipe.clear_reference()  # every variant computes its own reference pass
        with ablation(pipe):
            results[name] = evaluate_fn(pipe, **{**kwargs, **ablation.evaluate_kwargs})
    return results


def compare_ablations(results: dict[str, dict]) -> dict[str, dict]:
    """{variant: {"shows", "metrics", "spread", "helps": {key: [k, n]}}}: "helps" counts the identities in
    which the full model beats the variant (the switched-off module helps there). Needs "full model"."""
    full = results["full model"].get("per_identity", {})
    summary = {}
    for name, result in results.items():
        ablation = ABLATIONS.get(name, REFERENCE_POSE if name == REFERENCE_POSE_ABLATION else None)
        entry = {"shows": ablation.shows if ablation else "", "metrics": result["metrics"],
                 "spread": result.get("spread", {})}
        if name != "full model":
            entry["helps"] = {key: list(identities_better(full, result.get("per_identity", {}), key))
                              for key in METRIC_KEYS}
        summary[name] = entry
    return summary


def format_ablation_table(results: dict[str, dict]) -> str:
    """Markdown: one row per variant, each metric as mean ± std over identities and, for an ablation,
    "helps k/n" (the full model is better in k of n identities); then the baselines of the full
    model's run on the same frames; the last column says what each row shows."""
    compared = compare_ablations(results)
    keys = [k for k in METRIC_KEYS if all(k in r["metrics"] for r in results.values())]
    lines = ["| variant | " + " | ".join(keys) + " | what it shows |", "|---" * (len(keys) + 2) + "|"]
    for name, entry in compared.items():
        cells = []
        for k in keys:
            mean, std = entry["metrics"][k], entry["spread"].get(k, {}).get("std")
            cell = "-" if mean is None else f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")
            if "helps" in entry:
                cell += " (helps {}/{})".format(*entry["helps"][k])
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {entry['shows']} |")
    for name, values in results["full model"].get("baselines", {}).items():
        cells = ["-" if values.get(k) is None else f"{values[k]:.4f}" for k in keys]
        lines.append(f"| baseline: {name} | " + " | ".join(cells) + " | the same frames and reference |")
    return "\n".join(lines)
