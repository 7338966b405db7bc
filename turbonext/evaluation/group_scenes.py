"""Several people in one picture: per-person silhouette IoU and colour error (issue 16).

Scenes come from :func:`turbonext.synthetic.group.make_group_sequence` with identities from held-out seeds:
people side by side, one pose map holding every skeleton, the reference a frame of the same people in other
motions (a group photo). Each person is scored inside their own slot of the frame (a vertical band, which no
other person enters), so a model that draws one person well and drops the other shows it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from turbonext.evaluation.metrics import foreground_mask, to_float
from turbonext.jobs.reference import native_size, pose_style_of
from turbonext.synthetic.figure import Identity
from turbonext.synthetic.group import make_group_sequence
from turbonext.synthetic.motion import MOTIONS


GROUP_SEED = 0x6C0  # identities from their own seeds: no training identity reappears


def person_scores(pred, gt, mask: np.ndarray, band: slice) -> dict:
    """IoU of the prediction's foreground with the person's ``mask`` inside the person's column ``band``, and the
    colour error (mean absolute RGB difference, 0-1) over the person's pixels."""
    p, g = to_float(pred), to_float(gt)
    fp = foreground_mask(pred)[:, band]
    fg = (mask & foreground_mask(gt))[:, band]  # the person's pixels, by the same threshold as the prediction's
    union = np.logical_or(fp, fg).sum()
    iou = 1.0 if union == 0 else float(np.logical_and(fp, fg).sum() / union)
    color = float(np.abs(p[mask] - g[mask]).mean()) if mask.any() else float("nan")
    return {"iou": iou, "color_error": color}


def evaluate_group_scenes(pipe: Any, num_scenes: int = 4, people: int = 2, size: int | None = None,
                          num_frames: int = 8, num_inference_steps: int = 4, seed: int = 0) -> dict:
    """Render ``num_scenes`` scenes of ``people`` people with ``pipe`` and score every person; the copy-reference
    and black-frame baselines on the same scenes. ``size``: default the pipeline's native size."""
    size = int(size or native_size(pipe))
    style = pose_style_of(pipe)
    model_rows, base_rows = [], {"copy reference": [], "black frame": []}
    for scene in range(num_scenes):
        identities = [Identity.random(GROUP_SEED + 97 * scene + p, palette="held_out" if p % 2 else "train")
                      for p in range(people)]
        motions = [MOTIONS[(scene + p) % len(MOTIONS)] for p in range(people)]
        group = make_group_sequence(identities, motions, num_frames, size, seed=seed + scene, pose_style=style)
        reference = make_group_sequence(identities, [MOTIONS[(scene + p + 2) % len(MOTIONS)] for p in range(people)],
                                        1, size, seed=seed + 1000 + scene, pose_style=style).frames[0]
        pred = pipe(reference_image=reference, pose_images=group.poses, num_inference_steps=num_inference_steps,
                    generator=torch.Generator().manual_seed(seed), output_type="pil").frames[0]
        candidates = {"model": pred, "copy reference": [reference] * num_frames,
                      "black frame": [np.zeros((size, size, 3), np.uint8)] * num_frames}
        for name, frames in candidates.items():
            for p in range(people):
                band = slice(int(p * size / people), int((p + 1) * size / people))
                scores = [person_scores(frames[f], group.frames[f], group.masks[p, f], band) for f in range(num_frames)]
                row = {"scene": scene, "person": p, **{k: float(np.nanmean([s[k] for s in scores])) for k in scores[0]}}
                (model_rows if name == "model" else base_rows[name]).append(row)

    def mean(rows, key, person=None):
        values = [r[key] for r in rows if person is None or r["person"] == person]
        return float(np.nanmean(values)) if values else math.nan

    per_person = {p: {k: mean(model_rows, k, p) for k in ("iou", "color_error")} for p in range(people)}
    return {"people": people, "num_scenes": num_scenes, "size": size, "num_frames": num_frames,
            "metrics": {k: mean(model_rows, k) for k in ("iou", "color_error")}, "per_person": per_person,
            "worst_person_iou": min(v["iou"] for v in per_person.values()),
            "baselines": {name: {k: mean(rows, k) for k in ("iou", "color_error")} for name, rows in base_rows.items()},
            "rows": model_rows}


def format_group_scenes(result: dict) -> str:
    lines = [f"{result['num_scenes']} scenes of {result['people']} people, {result['num_frames']} frames, "
             f"{result['size']}x{result['size']}: each person scored in their own slot", "",
             f"{'':<28}{'IoU':>10}{'colour error':>15}"]
    lines.append(f"{'model, all people':<28}{result['metrics']['iou']:>10.4f}{result['metrics']['color_error']:>15.4f}")
    for p, values in result["per_person"].items():
        lines.append(f"{'model, person ' + str(p):<28}{values['iou']:>10.4f}{values['color_error']:>15.4f}")
    for name, values in result["baselines"].items():
        lines.append(f"{'baseline: ' + name:<28}{values['iou']:>10.4f}{values['color_error']:>15.4f}")
    return "\n".join(lines)
