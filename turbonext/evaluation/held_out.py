"""Evaluate a pose-transfer model on held-out synthetic sequences (``turbonext eval``).

For every scene of a split (see :mod:`turbonext.synthetic.dataset`), the model gets a reference
image of the person and the scene's pose maps, and its frames are scored against the ground-truth
frames with :mod:`turbonext.evaluation.metrics`. The reference is either the scene's own first frame
(``reference="first"``; that frame is then not scored, so copying the reference earns nothing) or
the first frame of another scene of the same identity (``reference="other"``; all frames scored).

The model is anything with the :class:`~turbonext.TurboNextPipeline` calling convention:
``pipe(reference_image=..., pose_images=[...], num_inference_steps=..., generator=...,
output_type="pil").frames[0]``, and for ``streaming=True``: ``session = pipe.stream(reference_image=...,
num_inference_steps=..., generator=...)``, ``session.step(pose) -> [frames ready]``,
``session.flush() -> [the rest]``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from turbonext.evaluation import metrics
from turbonext.evaluation.metrics import METRIC_KEYS
from turbonext.synthetic.dataset import SPLITS, load_scene, load_split


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(int(seed))


def _render(pipe: Any, reference: Image.Image, poses: list[Image.Image], steps: int, seed: int, streaming: bool,
            reference_pose: Image.Image | None = None, window: int = 16) -> list[Image.Image]:
    """Run the model over ``poses``; returns one frame per pose. ``reference_pose`` is passed only to
    models that read it (``pipe.reads_reference_pose``)."""
    extra = {"reference_pose": reference_pose} if getattr(pipe, "reads_reference_pose", False) else {}
    if not streaming:
        out = pipe(reference_image=reference, pose_images=poses, num_inference_steps=steps,
                   generator=_generator(seed), output_type="pil", **extra)
        return list(out.frames[0])
    if not hasattr(pipe, "stream"):
        raise ValueError(f"streaming=True needs a model with a .stream() method; {type(pipe).__name__} has none.")
    session = pipe.stream(reference_image=reference, num_inference_steps=steps, window=window,
                          generator=_generator(seed), **extra)
    frames: list[Image.Image] = []
    for pose in poses:
        frames.extend(session.step(pose))
    frames.extend(session.flush())
    return frames


class CopyReferenceBaseline:
    """The trivial baseline: every output frame is the reference image (right look, no motion).

    ``turbonext eval --model copy-reference`` scores it; a model must beat it on iou and psnr.
    """

    def __call__(self, reference_image: Image.Image, pose_images: list, **kwargs: Any):
        size = pose_images[0].size
        return _Frames([[reference_image.convert("RGB").resize(size) for _ in pose_images]])


class _Frames:
    """An output like a pipeline's: ``frames[0]`` is the clip."""

    def __init__(self, frames: list[list[Image.Image]]) -> None:
        self.frames = frames


def _reference_for(scene: str, all_scenes: list[str], dataset_dir: Path, mode: str
                   ) -> tuple[Image.Image, Image.Image, str, int]:
    """(reference image, its pose map, where it came from, first scored frame index)."""
    if mode == "first":
        frames, poses, _ = load_scene(dataset_dir / scene, num_frames=1)
        return frames[0], poses[0], f"{scene}#1", 1
    video = scene.split("/")[0]
    others = [s for s in all_scenes if s.split("/")[0] == video and s != scene]
    if not others:
        raise ValueError(f"reference='other' needs another scene of {video} in {dataset_dir}; found none for {scene}.")
    frames, poses, _ = load_scene(dataset_dir / others[0], num_frames=1)
    return frames[0], poses[0], f"{others[0]}#1", 0


def evaluate(
    pipe: Any,
    dataset_dir: str | Path,
    split: str = "test_identity",
    num_frames: int | None = None,
    num_inference_steps: int = 4,
    seed: int = 0,
    streaming: bool = False,
    window: int = 16,
    max_sequences: int | None = None,
    reference: str = "first",
    lpips: bool = True,
    fid: bool = False,
    progress: bool = True,
) -> dict:
    """Score ``pipe`` on the scenes of ``split`` in a synthetic dataset.

    Args:
        pipe: the model (see the module docstring for the calling convention).
        dataset_dir: a folder written by :func:`turbonext.synthetic.write_dataset`.
        split: one of :data:`~turbonext.synthetic.SPLITS`, e.g. "test_identity" or "test_motion".
        num_frames: frames per scene (default: all).
        num_inference_steps: denoising steps.
        seed: seeds the model's generator (the same for every scene).
        streaming: render through ``pipe.stream`` frame by frame instead of one call per clip.
        window: the stream's latent window (frames), with ``streaming``.
        max_sequences: score only the first this many scenes.
        reference: "first" (the scene's first frame; not scored) or "other" (another scene of
            the same identity; every frame scored).
        lpips / fid: also compute these when their packages and weights are on disk (otherwise
            the reason lands in ``skipped``).
        progress: show a tqdm bar over scenes.

    Returns:
        {"split", "settings", "num_sequences", "num_frames_scored", "metrics": {psnr, ssim, iou,
        color_error, flicker, lpips?, fid?}, "parts": {part: colour error}, "skipped": {name:
        reason}, "seconds_per_frame", "sequences": [per-scene scores]}.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    if reference not in ("first", "other"):
        raise ValueError(f"reference must be 'first' or 'other'; got {reference!r}.")
    root = Path(dataset_dir)
    index = load_split(root)
    scenes = list(index.get(split, []))[: max_sequences if max_sequences is not None else None]
    if not scenes:
        raise ValueError(f"split {split!r} of {root} has no scenes; write it with `turbonext synthetic --out {root}`.")
    min_frames = 3 if reference == "first" else 2
    if num_frames is not None and num_frames < min_frames:
        raise ValueError(f"num_frames must be >= {min_frames} with reference={reference!r}; got {num_frames}.")
    all_scenes = [s for name in SPLITS for s in index.get(name, [])]
    skipped: dict[str, str] = {}
    if lpips and not metrics.lpips_available()[0]:
        skipped["lpips"] = metrics.lpips_available()[1]
    if fid and not metrics.fid_available()[0]:
        skipped["fid"] = metrics.fid_available()[1]

    per_scene: list[dict] = []
    all_pred: list[Image.Image] = []
    all_gt: list[Image.Image] = []
    seconds, rendered = 0.0, 0
    for scene in tqdm(scenes, desc=f"eval {split}", disable=not progress):
        gt, poses, keypoints = load_scene(root / scene, num_frames)
        ref_image, ref_pose, ref_name, first = _reference_for(scene, all_scenes, root, reference)
        start = time.perf_counter()
        pred = _render(pipe, ref_image, poses, num_inference_steps, seed, streaming, ref_pose, window)
        seconds += time.perf_counter() - start
        rendered += len(poses)
        if len(pred) != len(poses):
            raise ValueError(f"the model returned {len(pred)} frames for {len(poses)} poses on {scene}.")
        if pred[0].size != gt[0].size:
            raise ValueError(f"the model returned {pred[0].size} frames for {gt[0].size} poses on {scene}.")
        pred, gt = [p.convert("RGB") for p in pred[first:]], gt[first:]
        kp = keypoints[first:] if keypoints is not None else None
        scores = metrics.score_sequence(pred, gt, kp)
        if lpips and "lpips" not in skipped:
            scores["lpips"] = metrics.lpips_distance(pred, gt)
        per_scene.append({"scene": scene, "reference": ref_name, "frames": len(gt), **scores})
        if fid and "fid" not in skipped:
            all_pred += pred
            all_gt += gt

    summary: dict[str, float | None] = {}
    for key in METRIC_KEYS + (("lpips",) if lpips and "lpips" not in skipped else ()):
        values = [r[key] for r in per_scene if key in r and r[key] is not None and math.isfinite(r[key])]
        summary[key] = float(np.mean(values)) if values else None
    if fid and "fid" not in skipped:
        summary["fid"] = metrics.fid_score(all_pred, all_gt)
    part_names = sorted({p for r in per_scene for p in r.get("parts", {})})
    parts = {p: float(np.mean([r["parts"][p] for r in per_scene if p in r.get("parts", {})])) for p in part_names}
    return {
        "split": split,
        "dataset": str(root),
        "settings": {"num_frames": num_frames, "num_inference_steps": num_inference_steps, "seed": seed,
                     "streaming": streaming, "window": window if streaming else None, "reference": reference,
                     "max_sequences": max_sequences},
        "num_sequences": len(per_scene),
        "num_frames_scored": int(sum(r["frames"] for r in per_scene)),
        "metrics": summary,
        "parts": parts,
        "skipped": skipped,
        "seconds_per_frame": seconds / max(rendered, 1),
        "sequences": per_scene,
    }


def format_table(result: dict) -> str:
    """A plain-text table: one row per scene and a mean row."""
    keys = [k for k in METRIC_KEYS + ("lpips",) if k in result["metrics"]]
    header = f"{'scene':<22}" + "".join(f"{k:>12}" for k in keys)
    lines = [header, "-" * len(header)]

    def cell(v: float | None) -> str:
        return f"{'-':>12}" if v is None or not math.isfinite(v) else f"{v:>12.4f}"

    for r in result["sequences"]:
        lines.append(f"{r['scene']:<22}" + "".join(cell(r.get(k)) for k in keys))
    lines.append("-" * len(header))
    lines.append(f"{'mean':<22}" + "".join(cell(result["metrics"][k]) for k in keys))
    if result["metrics"].get("fid") is not None:
        lines.append(f"FID: {result['metrics']['fid']:.3f}")
    for name, reason in result["skipped"].items():
        lines.append(f"[{name}] {reason}")
    lines.append(f"{result['num_sequences']} scenes, {result['num_frames_scored']} frames scored, "
                 f"{result['seconds_per_frame'] * 1000:.1f} ms per rendered frame")
    return "\n".join(lines)
