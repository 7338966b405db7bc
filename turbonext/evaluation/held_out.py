"""Evaluate a pose-transfer model on held-out synthetic sequences (``turbonext eval``).

For every scene of a split (see :mod:`turbonext.synthetic.dataset`), the model gets a reference
image of the person and the scene's pose maps, and its frames are scored against the ground-truth
frames with :mod:`turbonext.evaluation.metrics`. The evaluation is built so that it cannot flatter:

* **Reference from another clip** (``reference="other"``, the default): the first frame of another
  scene of the same identity, preferably one with a different motion (:func:`reference_scene`); every
  frame is scored. ``reference="first"`` (the scene's own first frame, 1-7 frames from the scored
  ones; that frame is not scored) is kept only as an explicit option: it flatters.
* **Baselines beside the model**: the same scenes, frames and reference are scored for
  :class:`CopyReferenceBaseline` (every frame is the reference) and :class:`BlackFrameBaseline`
  (every frame black): ``result["baselines"]``. A model that does not beat them has learnt nothing.
* **Spread over identities**: scores are averaged per identity first; ``result["metrics"]`` is the
  mean over identities and ``result["spread"]`` its std, min and max, so one lucky identity shows.
  ``result["by_palette"]`` splits the identities by clothing palette (training colours or held-out
  colours), and ``result["beats_baseline"]`` counts the identities in which the model beats each baseline.
* **Splits**: tune on ``val_identity``; report ``test_identity`` (the default), ``test_motion`` and
  ``test_both``.

``poses="shuffled"`` gives the model the poses of another identity's clip (:func:`shuffled_pose_scene`)
while scoring against the true frames: a model that follows the pose loses IoU (an ablation).

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
from typing import Any, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from turbonext.evaluation import metrics
from turbonext.evaluation.metrics import LOWER_IS_BETTER, METRIC_KEYS
from turbonext.evaluation.pose_accuracy import POSE_ACCURACY_KEYS, pose_accuracy
from turbonext.synthetic.dataset import SPLITS, identity_palette, load_scene, load_split


REFERENCE_MODES = ("other", "first")
POSE_MODES = ("own", "shuffled")
PALETTE_NAMES = {"train": "training-palette identities", "held_out": "off-palette identities"}


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


class _Frames:
    """An output like a pipeline's: ``frames[0]`` is the clip."""

    def __init__(self, frames: list[list[Image.Image]]) -> None:
        self.frames = frames


class CopyReferenceBaseline:
    """The trivial baseline: every output frame is the reference image (right look, no motion).

    Scored beside every model (``result["baselines"]["copy reference"]``); a model must beat it.
    """

    def __call__(self, reference_image: Image.Image, pose_images: list, **kwargs: Any) -> _Frames:
        size = pose_images[0].size
        return _Frames([[reference_image.convert("RGB").resize(size) for _ in pose_images]])


class BlackFrameBaseline:
    """The empty baseline: every output frame is black (what a model that draws nothing scores).

    Scored beside every model (``result["baselines"]["black frame"]``).
    """

    def __call__(self, reference_image: Image.Image, pose_images: list, **kwargs: Any) -> _Frames:
        size = pose_images[0].size
        return _Frames([[Image.new("RGB", size) for _ in pose_images]])


BASELINES: dict[str, type] = {"copy reference": CopyReferenceBaseline, "black frame": BlackFrameBaseline}


def _motion(scene: str) -> str:
    """The motion of a scene ``"<video>/<motion>_<k>"`` (the whole scene name when it has no ``_k``)."""
    name = scene.split("/")[-1]
    return name.rsplit("_", 1)[0] if "_" in name else name


def _identity(scene: str) -> str:
    return scene.split("/")[0]


def _cyclic_after(scene: str, candidates: Sequence[str]) -> list[str]:
    """``candidates`` sorted, starting after where ``scene`` falls in that order (deterministic, spread out)."""
    ordered = sorted(candidates)
    return [s for s in ordered if s > scene] + [s for s in ordered if s <= scene]


def reference_scene(scene: str, all_scenes: Sequence[str]) -> str:
    """The scene whose first frame is ``scene``'s reference: another scene of the same identity, the
    next one (in name order, cyclically) with a different motion, else with the same motion."""
    others = [s for s in set(all_scenes) if _identity(s) == _identity(scene) and s != scene]
    if not others:
        raise ValueError(f"no other scene of {_identity(scene)} for {scene}: the reference must come from another clip "
                         "of the same identity (write the dataset with more motions or splits, or pass "
                         "reference='first', which flatters).")
    ordered = _cyclic_after(scene, others)
    different = [s for s in ordered if _motion(s) != _motion(scene)]
    return (different or ordered)[0]


def shuffled_pose_scene(scene: str, all_scenes: Sequence[str]) -> str:
    """The scene whose poses replace ``scene``'s for ``poses="shuffled"``: the next scene (cyclically,
    in name order) of another identity with a different motion, else of another identity, else any other."""
    others = _cyclic_after(scene, [s for s in set(all_scenes) if s != scene])
    if not others:
        raise ValueError(f"poses='shuffled' needs another scene than {scene}; the dataset has none.")
    other_id = [s for s in others if _identity(s) != _identity(scene)]
    best = [s for s in other_id if _motion(s) != _motion(scene)]
    return (best or other_id or others)[0]


def _reference_for(scene: str, all_scenes: list[str], dataset_dir: Path, mode: str
                   ) -> tuple[Image.Image, Image.Image, str, int]:
    """(reference image, its pose map, where it came from, first scored frame index)."""
    if mode == "first":
        frames, poses, _ = load_scene(dataset_dir / scene, num_frames=1)
        return frames[0], poses[0], f"{scene}#1", 1
    other = reference_scene(scene, all_scenes)
    frames, poses, _ = load_scene(dataset_dir / other, num_frames=1)
    return frames[0], poses[0], f"{other}#1", 0


def _shuffled_poses(scene: str, all_scenes: list[str], dataset_dir: Path, count: int) -> tuple[list[Image.Image], str]:
    """``count`` pose maps of :func:`shuffled_pose_scene` (repeated cyclically if that clip is shorter)."""
    other = shuffled_pose_scene(scene, all_scenes)
    _, poses, _ = load_scene(dataset_dir / other, num_frames=count)
    return [poses[i % len(poses)] for i in range(count)], other


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _spread(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    arr = np.asarray(values, np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            "min": float(arr.min()), "max": float(arr.max()), "n": int(arr.size)}


def summarise(per_scene: list[dict], keys: Sequence[str]) -> tuple[dict, dict, dict]:
    """(metrics, spread, per_identity) of scene scores (dicts with "scene" and the ``keys``): each
    identity's mean over its scenes, then the mean (``metrics``) and mean/std/min/max/n (``spread``)
    over identities. NaN and None scores are left out."""
    groups: dict[str, list[dict]] = {}
    for r in per_scene:
        groups.setdefault(_identity(r["scene"]), []).append(r)
    per_identity: dict[str, dict] = {}
    for ident, rows in groups.items():
        entry: dict[str, Any] = {"scenes": len(rows)}
        for key in keys:
            values = [r[key] for r in rows if _finite(r.get(key))]
            entry[key] = float(np.mean(values)) if values else None
        per_identity[ident] = entry
    spread = {key: _spread([e[key] for e in per_identity.values() if e[key] is not None]) for key in keys}
    return {key: spread[key]["mean"] for key in keys}, spread, per_identity


def identities_better(a: dict, b: dict, key: str) -> tuple[int, int]:
    """(k, n): in k of the n identities that both per-identity tables score on ``key``, ``a`` is
    strictly better than ``b`` (lower for :data:`~turbonext.evaluation.metrics.LOWER_IS_BETTER`)."""
    common = [i for i in a if i in b and a[i].get(key) is not None and b[i].get(key) is not None]
    sign = -1.0 if key in LOWER_IS_BETTER else 1.0
    return sum(sign * (a[i][key] - b[i][key]) > 0 for i in common), len(common)


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
    reference: str = "other",
    poses: str = "own",
    lpips: bool = True,
    fid: bool = False,
    progress: bool = True,
    pose_detector=None,
) -> dict:
    """Score ``pipe`` and the baselines on the scenes of ``split`` in a synthetic dataset.

    Args:
        pipe: the model (see the module docstring for the calling convention).
        dataset_dir: a folder written by :func:`turbonext.synthetic.write_dataset`.
        split: one of :data:`~turbonext.synthetic.SPLITS`: "test_identity" (report), "val_identity" (tune), ...
        num_frames: frames per scene (default: all).
        num_inference_steps: denoising steps.
        seed: seeds the model's generator (the same for every scene).
        streaming: render through ``pipe.stream`` frame by frame instead of one call per clip.
        window: the stream's latent window (frames), with ``streaming``.
        max_sequences: score only the first this many scenes.
        reference: "other" (default: the first frame of another clip of the same identity, see
            :func:`reference_scene`; every frame scored) or "first" (the scene's own first frame, not
            scored; it flatters, since it is 1-7 frames from the scored ones).
        poses: "own" (the scene's poses) or "shuffled" (another identity's clip's poses, see
            :func:`shuffled_pose_scene`, still scored against the scene's true frames).
        lpips / fid: also compute these for the model when their packages and weights are on disk
            (otherwise the reason lands in ``skipped``).
        progress: show a tqdm bar over scenes.
        pose_detector: a :class:`~turbonext.pose.backends.PoseDetector`: also score pose accuracy (PCK, OKS; see
            :mod:`turbonext.evaluation.pose_accuracy`) of the model and the baselines, with the detector's ceiling
            on the ground-truth frames in "pose_accuracy_ceiling".

    Returns:
        {"split", "dataset", "settings", "num_sequences", "num_identities", "num_frames_scored",
        "metrics": {key: mean over identities} for the :data:`~turbonext.evaluation.metrics.METRIC_KEYS`
        (and lpips, fid), "spread": {key: {mean, std, min, max, n}} over identities, "per_identity":
        {identity: {key: mean over its scenes, "scenes", "palette"}}, "by_palette": {palette: {"identities",
        "metrics"}}, "baselines": {"copy reference": metrics, "black frame": metrics} on exactly the same
        frames and references, "baseline_spread", "baseline_per_identity", "beats_baseline": {baseline:
        {key: [k, n]}} (the model better in k of n identities), "parts": {part: colour error}, "skipped":
        {name: reason}, "seconds_per_frame", "sequences": [per-scene scores, each with its "baselines"]}.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    if reference not in REFERENCE_MODES:
        raise ValueError(f"reference must be one of {REFERENCE_MODES}; got {reference!r}.")
    if poses not in POSE_MODES:
        raise ValueError(f"poses must be one of {POSE_MODES}; got {poses!r}.")
    root = Path(dataset_dir)
    index = load_split(root)
    scenes = list(index.get(split, []))[: max_sequences if max_sequences is not None else None]
    if not scenes:
        raise ValueError(f"split {split!r} of {root} has no scenes; write it with `turbonext synthetic --out {root}`.")
    min_frames = 3 if reference == "first" else 2
    if num_frames is not None and num_frames < min_frames:
        raise ValueError(f"num_frames must be >= {min_frames} with reference={reference!r}; got {num_frames}.")
    all_scenes = [s for name, value in index.items() if name != "meta" and isinstance(value, list) for s in value]
    skipped: dict[str, str] = {}
    if lpips and not metrics.lpips_available()[0]:
        skipped["lpips"] = metrics.lpips_available()[1]
    if fid and not metrics.fid_available()[0]:
        skipped["fid"] = metrics.fid_available()[1]
    baselines = {name: make() for name, make in BASELINES.items()}

    per_scene: list[dict] = []
    ceiling: list[dict] = []  # the pose detector on the ground-truth frames
    all_pred: list[Image.Image] = []
    all_gt: list[Image.Image] = []
    seconds, rendered = 0.0, 0
    for scene in tqdm(scenes, desc=f"eval {split}", disable=not progress):
        gt, scene_poses, keypoints = load_scene(root / scene, num_frames)
        ref_image, ref_pose, ref_name, first = _reference_for(scene, all_scenes, root, reference)
        model_poses, poses_from = scene_poses, scene
        if poses == "shuffled":
            model_poses, poses_from = _shuffled_poses(scene, all_scenes, root, len(scene_poses))
        start = time.perf_counter()
        pred = _render(pipe, ref_image, model_poses, num_inference_steps, seed, streaming, ref_pose, window)
        seconds += time.perf_counter() - start
        rendered += len(model_poses)
        if len(pred) != len(model_poses):
            raise ValueError(f"the model returned {len(pred)} frames for {len(model_poses)} poses on {scene}.")
        if pred[0].size != gt[0].size:
            raise ValueError(f"the model returned {pred[0].size} frames for {gt[0].size} poses on {scene}.")
        pred, gt = [p.convert("RGB") for p in pred[first:]], gt[first:]
        kp = keypoints[first:] if keypoints is not None else None
        scores = metrics.score_sequence(pred, gt, kp)
        if pose_detector is not None and kp is not None:
            accuracy = pose_accuracy(pred, kp, pose_detector)
            scores.update(pck=accuracy["pck"], oks=accuracy["oks"])
            ceiling.append(pose_accuracy(gt, kp, pose_detector))
        if lpips and "lpips" not in skipped:
            scores["lpips"] = metrics.lpips_distance(pred, gt)
        base_scores = {}
        for name, baseline in baselines.items():
            frames = _render(baseline, ref_image, scene_poses, num_inference_steps, seed, False)[first:]
            base = metrics.score_sequence(frames, gt, kp)
            base.pop("parts", None)
            if pose_detector is not None and kp is not None:
                base.update({k: v for k, v in pose_accuracy(frames, kp, pose_detector).items() if k in POSE_ACCURACY_KEYS})
            base_scores[name] = {"scene": scene, **base}
        row = {"scene": scene, "identity": _identity(scene), "reference": ref_name, "frames": len(gt), **scores,
               "baselines": base_scores}
        if poses == "shuffled":
            row["poses_from"] = poses_from
        per_scene.append(row)
        if fid and "fid" not in skipped:
            all_pred += pred
            all_gt += gt

    pose_keys = POSE_ACCURACY_KEYS if ceiling else ()
    keys = METRIC_KEYS + (("lpips",) if lpips and "lpips" not in skipped else ()) + pose_keys
    summary, spread, per_identity = summarise(per_scene, keys)
    for ident, entry in per_identity.items():
        entry["palette"] = identity_palette(root, ident)
    by_palette = {}
    for palette in sorted({e["palette"] for e in per_identity.values()}):
        rows = [r for r in per_scene if per_identity[r["identity"]]["palette"] == palette]
        by_palette[palette] = {"identities": len({r["identity"] for r in rows}), "metrics": summarise(rows, keys)[0]}
    if fid and "fid" not in skipped:
        summary["fid"] = metrics.fid_score(all_pred, all_gt)
    base_metrics, base_spread, base_per_identity = {}, {}, {}
    for name in baselines:
        base_metrics[name], base_spread[name], base_per_identity[name] = summarise(
            [r["baselines"][name] for r in per_scene], METRIC_KEYS + pose_keys)
    beats = {name: {key: list(identities_better(per_identity, base_per_identity[name], key))
                    for key in METRIC_KEYS + pose_keys} for name in baselines}
    part_names = sorted({p for r in per_scene for p in r.get("parts", {})})
    parts = {p: float(np.mean([r["parts"][p] for r in per_scene if p in r.get("parts", {})])) for p in part_names}
    return {
        "split": split,
        "dataset": str(root),
        "settings": {"num_frames": num_frames, "num_inference_steps": num_inference_steps, "seed": seed,
                     "streaming": streaming, "window": window if streaming else None, "reference": reference,
                     "poses": poses, "max_sequences": max_sequences},
        "num_sequences": len(per_scene),
        "num_identities": len(per_identity),
        "num_frames_scored": int(sum(r["frames"] for r in per_scene)),
        "metrics": summary,
        "spread": spread,
        "per_identity": per_identity,
        "by_palette": by_palette,
        "baselines": base_metrics,
        "baseline_spread": base_spread,
        "baseline_per_identity": base_per_identity,
        "beats_baseline": beats,
        "parts": parts,
        "skipped": skipped,
        "pose_accuracy_ceiling": ({k: float(np.nanmean([c[k] for c in ceiling])) for k in ("pck", "oks", "detected")}
                                  if ceiling else None),
        "seconds_per_frame": seconds / max(rendered, 1),
        "sequences": per_scene,
    }


def _cell(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


def format_table(result: dict) -> str:
    """A plain-text table: one row per identity, the mean, std, min and max over identities, the
    model on each clothing palette, the baselines on the same frames, and how often the model beats them."""
    keys = [k for k in METRIC_KEYS + ("lpips",) + POSE_ACCURACY_KEYS if k in result["metrics"]]
    settings = result["settings"]
    reference = ("another clip of the same identity" if settings.get("reference", "other") == "other"
                 else "the clip's own first frame (flatters)")
    n = result.get("num_identities", len(result.get("per_identity", {})))
    rows: list[tuple[str, list[str]] | None] = []  # None: a rule
    for ident, entry in result.get("per_identity", {}).items():
        off = ", off-palette" if entry.get("palette") == "held_out" else ""
        rows.append((f"{ident} ({entry['scenes']} scenes{off})", [_cell(entry.get(k)) for k in keys]))
    rows.append(None)
    rows.append((f"model: mean over {n} identities", [_cell(result["metrics"][k]) for k in keys]))
    for stat in ("std", "min", "max"):
        rows.append((f"model: {stat}", [_cell(result.get("spread", {}).get(k, {}).get(stat)) for k in keys]))
    by_palette = result.get("by_palette", {})
    if len(by_palette) > 1:
        for palette, group in by_palette.items():
            rows.append((f"model: {PALETTE_NAMES.get(palette, palette)} ({group['identities']})",
                         [_cell(group["metrics"].get(k)) for k in keys]))
    for name, values in result.get("baselines", {}).items():
        rows.append((f"baseline: {name}", [_cell(values.get(k)) for k in keys]))
    for name, wins in result.get("beats_baseline", {}).items():
        rows.append((f"model beats {name} in", [f"{wins[k][0]}/{wins[k][1]}" if k in wins else "-" for k in keys]))
    label = max(len(r[0]) for r in rows if r is not None) + 2
    widths = [max(12, len(k) + 2) for k in keys]
    header = f"{'identity':<{label}}" + "".join(f"{k:>{w}}" for k, w in zip(keys, widths))
    rule = "-" * len(header)
    lines = [f"{result['split']} of {result['dataset']}: reference = {reference}"
             + ("; poses shuffled (another identity's clip)" if settings.get("poses") == "shuffled" else ""),
             header, rule]
    for row in rows:
        lines.append(rule if row is None else f"{row[0]:<{label}}" + "".join(f"{c:>{w}}" for c, w in zip(row[1], widths)))
    if result.get("pose_accuracy_ceiling"):
        c = result["pose_accuracy_ceiling"]
        lines.append(f"pose accuracy ceiling (the detector on the ground-truth frames): PCK {c['pck']:.3f}, "
                     f"OKS {c['oks']:.3f}, a person found in {c['detected']:.0%} of frames")
    if result["metrics"].get("fid") is not None:
        lines.append(f"FID: {result['metrics']['fid']:.3f}")
    for name, reason in result["skipped"].items():
        lines.append(f"[{name}] {reason}")
    lines.append(f"{result['num_sequences']} scenes of {n} identities, {result['num_frames_scored']} frames scored, "
                 f"{result['seconds_per_frame'] * 1000:.1f} ms per rendered frame")
    return "\n".join(lines)
