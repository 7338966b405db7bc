"""Image and video metrics for pose transfer, with ground truth (numpy; torch only for LPIPS/FID).

The synthetic frames are a figure on pure black, so whole-frame scores flatter: a black frame has
whole-frame SSIM ~0.8. The reported metrics (:data:`METRIC_KEYS`) therefore look at the figure:

* :func:`psnr` (whole frame) and :func:`ssim_box`: SSIM inside the ground-truth figure's bounding
  box (black frame ~0.4-0.5 instead of ~0.8); :func:`ssim` is the whole-frame SSIM, not reported.
* :func:`silhouette_iou`: does the figure cover the right pixels (pose fidelity)? Foreground is
  every pixel whose brightest channel exceeds ``threshold`` (backgrounds are pure black).
* :func:`figure_color_error` (``"color_error"``): mean absolute RGB error (0-1) over the
  ground-truth figure's pixels: 0 for the truth, the figure's mean brightness for a black frame.
* :func:`part_color_error` (``"part_color_error"``): does each body part keep the reference's
  colours? Regions (head, torso, upper/lower arms and legs) come from the ground-truth keypoints,
  restricted to the ground-truth foreground; the error is the mean absolute difference of the
  region's mean colour between prediction and ground truth, channels in [0, 1].
* :func:`background_brightness`: how clean the background is: the prediction's mean brightness (0-255)
  where the ground truth is black (0 = clean).
* :func:`temporal_flicker` (``"flicker"``): mean |(pred_t - pred_{t-1}) - (gt_t - gt_{t-1})| over
  pixels and frame pairs: >= 0, 0 for the truth, > 0 both for a prediction that jitters and for
  one that stands still while the truth moves (a static black clip no longer beats the truth).
* :func:`lpips_distance`, :func:`fid_score`: only when the ``lpips`` / ``torch-fidelity`` packages
  AND their backbone weights are already on disk; otherwise they return None with a reason from
  :func:`lpips_available` / :func:`fid_available`. Nothing is ever downloaded.

Images are PIL images or arrays (H, W, 3), uint8 in [0, 255] or float in [0, 1].
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw


#: What `turbonext eval` reports per sequence (see the module docstring).
METRIC_KEYS = ("psnr", "ssim_box", "iou", "color_error", "part_color_error", "flicker")
#: Metrics where lower is better (the others: higher is better).
LOWER_IS_BETTER = frozenset({"color_error", "part_color_error", "flicker", "lpips", "fid"})

ImageLike = Image.Image | np.ndarray
PSNR_MAX_DB = 100.0  # identical images score this instead of infinity (keeps means and JSON finite)
FOREGROUND_THRESHOLD = 0.1
BACKGROUND_THRESHOLD = 9.5 / 255  # ground-truth pixels whose brightest channel is below 10 (of 255) are background
KEYPOINT_THRESHOLD = 0.3

#: Body parts for the colour error: (kind, keypoint indices). Limbs are capsules between two joints.
BODY_PARTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "head": ("head", (0, 1, 2, 3, 4)),
    "torso": ("polygon", (5, 6, 12, 11)),
    "left_upper_arm": ("arm", (5, 7)),
    "left_forearm": ("arm", (7, 9)),
    "right_upper_arm": ("arm", (6, 8)),
    "right_forearm": ("arm", (8, 10)),
    "left_thigh": ("leg", (11, 13)),
    "left_shin": ("leg", (13, 15)),
    "right_thigh": ("leg", (12, 14)),
    "right_shin": ("leg", (14, 16)),
}


def to_float(image: ImageLike) -> np.ndarray:
    """An RGB image as float32 (H, W, 3) in [0, 1]."""
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    else:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"images must be RGB (H, W, 3); got shape {array.shape}.")
        array = array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)
    return array


def _pair(pred: ImageLike, gt: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    p, g = to_float(pred), to_float(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} must have the same size.")
    return p, g


def psnr(pred: ImageLike, gt: ImageLike) -> float:
    """Peak signal-to-noise ratio in dB (data range 1); identical images give :data:`PSNR_MAX_DB`."""
    p, g = _pair(pred, gt)
    mse = float(np.mean((p - g) ** 2))
    return PSNR_MAX_DB if mse <= 10 ** (-PSNR_MAX_DB / 10) else float(-10.0 * np.log10(mse))


def ssim(pred: ImageLike, gt: ImageLike) -> float:
    """Structural similarity (scikit-image, colour, data range 1); 1.0 for identical images."""
    from skimage.metrics import structural_similarity

    p, g = _pair(pred, gt)
    win = min(7, min(p.shape[:2]) // 2 * 2 - 1)
    if win < 3:
        raise ValueError(f"images must be at least 3x3 for SSIM; got {p.shape[:2]}.")
    return float(structural_similarity(g, p, channel_axis=-1, data_range=1.0, win_size=win))


def figure_box(gt: ImageLike, threshold: float = FOREGROUND_THRESHOLD, margin: float = 0.05,
               min_size: int = 7) -> tuple[slice, slice] | None:
    """(rows, cols) slices of the ground truth's foreground bounding box, grown by ``margin`` of its
    size on each side (at least 2 px) and to at least ``min_size`` px, inside the image; None when
    the ground truth has no foreground."""
    g = to_float(gt)
    ys, xs = np.nonzero(g.max(axis=-1) > threshold)
    if ys.size == 0:
        return None
    h, w = g.shape[:2]
    bounds = []
    for lo, hi, n in ((ys.min(), ys.max() + 1, h), (xs.min(), xs.max() + 1, w)):
        pad = max(2, int(round(margin * (hi - lo))))
        lo, hi = max(0, lo - pad), min(n, hi + pad)
        size = min(min_size, n)
        if hi - lo < size:
            lo = min(max(0, (lo + hi) // 2 - size // 2), n - size)
            hi = lo + size
        bounds.append(slice(int(lo), int(hi)))
    return bounds[0], bounds[1]


def ssim_box(pred: ImageLike, gt: ImageLike, threshold: float = FOREGROUND_THRESHOLD) -> float:
    """SSIM inside the ground-truth figure's bounding box (:func:`figure_box`); 1.0 for identical
    images, NaN when the ground truth has no foreground. Unlike whole-frame :func:`ssim`, the black
    background around the figure cannot lift a black or empty prediction."""
    p, g = _pair(pred, gt)
    box = figure_box(g, threshold)
    if box is None:
        return float("nan")
    return ssim(p[box], g[box])


def figure_color_error(pred: ImageLike, gt: ImageLike, threshold: float = FOREGROUND_THRESHOLD) -> float:
    """Mean absolute RGB error (channels in [0, 1]) over the ground truth's figure pixels (brightest
    channel > ``threshold``); 0.0 for identical images, NaN when the ground truth has no figure."""
    p, g = _pair(pred, gt)
    figure = g.max(axis=-1) > threshold
    if not figure.any():
        return float("nan")
    return float(np.abs(p[figure] - g[figure]).mean(dtype=np.float64))


def foreground_mask(image: ImageLike, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """bool (H, W): pixels whose brightest channel exceeds ``threshold`` (in [0, 1])."""
    return to_float(image).max(axis=-1) > threshold


def background_brightness(pred: ImageLike, gt: ImageLike, threshold: float = BACKGROUND_THRESHOLD) -> float:
    """Mean brightness (0-255) of the prediction where the ground truth is background; 0 = clean."""
    p, g = _pair(pred, gt)
    return float(p[g.max(axis=-1) < threshold].mean(dtype=np.float64) * 255)


def silhouette_iou(pred: ImageLike, gt: ImageLike, threshold: float = FOREGROUND_THRESHOLD) -> float:
    """Intersection over union of the foregrounds; 1.0 when both are empty."""
    p, g = _pair(pred, gt)
    fp, fg = p.max(axis=-1) > threshold, g.max(axis=-1) > threshold
    union = np.logical_or(fp, fg).sum()
    return 1.0 if union == 0 else float(np.logical_and(fp, fg).sum() / union)


def body_part_masks(
    keypoints: np.ndarray, size: tuple[int, int], threshold: float = KEYPOINT_THRESHOLD
) -> dict[str, np.ndarray]:
    """bool (H, W) masks of the :data:`BODY_PARTS` whose keypoints are all confident.

    Widths scale with the body: the larger of the torso length and 0.8x the longest leg bone.
    ``size`` is (width, height). The head uses whichever face keypoints are visible.
    """
    kp = np.asarray(keypoints, np.float64)
    if kp.shape != (17, 3):
        raise ValueError(f"keypoints must have shape (17, 3); got {kp.shape}.")
    ok = kp[:, 2] >= threshold
    xy = kp[:, :2]
    lengths = [np.hypot(*(xy[a] - xy[b])) * 0.8 for a, b in ((11, 13), (12, 14), (13, 15), (14, 16)) if ok[a] and ok[b]]
    if ok[[5, 6, 11, 12]].all():
        lengths.append(np.hypot(*(xy[[5, 6]].mean(0) - xy[[11, 12]].mean(0))))
    if not lengths:
        return {}
    body = max(lengths)
    width = {"arm": 0.3 * body, "leg": 0.4 * body}
    masks: dict[str, np.ndarray] = {}
    for name, (kind, joints) in BODY_PARTS.items():
        canvas = Image.new("L", (int(size[0]), int(size[1])), 0)
        draw = ImageDraw.Draw(canvas)
        if kind == "head":
            visible = [j for j in joints if ok[j]]
            if not visible:
                continue
            cx, cy = xy[visible].mean(0)
            r = 0.33 * body
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        elif not ok[list(joints)].all():
            continue
        elif kind == "polygon":
            points = [tuple(xy[j]) for j in joints]
            draw.polygon(points, fill=1)
            draw.line(points + [points[0]], fill=1, width=max(1, int(0.15 * body)))
        else:
            a, b, w = xy[joints[0]], xy[joints[1]], width[kind]
            draw.line([tuple(a), tuple(b)], fill=1, width=max(1, int(round(w))))
            for c in (a, b):
                draw.ellipse([c[0] - w / 2, c[1] - w / 2, c[0] + w / 2, c[1] + w / 2], fill=1)
        masks[name] = np.asarray(canvas, dtype=bool)
    return masks


def part_color_error(
    pred: ImageLike,
    gt: ImageLike,
    keypoints: np.ndarray,
    threshold: float = FOREGROUND_THRESHOLD,
    min_pixels: int = 4,
) -> dict[str, float]:
    """Per-part colour error (see the module docstring) and their ``"mean"``; parts with fewer
    than ``min_pixels`` ground-truth foreground pixels are left out. 0.0 for identical images."""
    p, g = _pair(pred, gt)
    fg = g.max(axis=-1) > threshold
    errors: dict[str, float] = {}
    for name, mask in body_part_masks(keypoints, (g.shape[1], g.shape[0])).items():
        region = mask & fg
        if region.sum() < min_pixels:
            continue
        errors[name] = float(np.abs(p[region].mean(0) - g[region].mean(0)).mean())
    errors["mean"] = float(np.mean(list(errors.values()))) if errors else float("nan")
    return errors


def temporal_flicker(pred_frames: Sequence[ImageLike], gt_frames: Sequence[ImageLike]) -> float:
    """Mean absolute difference between the predicted and the true frame-to-frame change, over
    pixels, channels (in [0, 1]) and consecutive frame pairs: >= 0; 0 when the prediction changes
    exactly as the truth does (the truth itself, or the truth plus a constant); > 0 for jitter
    and for a prediction that stands still while the truth moves."""
    if len(pred_frames) != len(gt_frames):
        raise ValueError(f"need as many predicted as ground-truth frames; got {len(pred_frames)} and {len(gt_frames)}.")
    if len(pred_frames) < 2:
        raise ValueError("temporal_flicker needs at least 2 frames.")
    p = np.stack([to_float(f) for f in pred_frames])  # (T, H, W, 3)
    g = np.stack([to_float(f) for f in gt_frames])
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} must have the same size.")
    return float(np.abs(np.diff(p, axis=0) - np.diff(g, axis=0)).mean(dtype=np.float64))


# ------------------------------------------------------------------ optional: LPIPS and FID
_LPIPS_MODELS: dict[str, object] = {}
_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
_TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth", "squeeze": "squeezenet1_1-b8a52dc0.pth"}


def _hub_checkpoint(name: str) -> Path | None:
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return path if path.is_file() else None


def lpips_available(net: str = "alex") -> tuple[bool, str]:
    """(available, reason): LPIPS needs the ``lpips`` package, torchvision and both weight files
    (lpips' linear layers and the torchvision backbone in the torch hub cache) on disk."""
    for module in ("torch", "torchvision", "lpips"):
        if importlib.util.find_spec(module) is None:
            return False, f"LPIPS skipped: the {module!r} package is not installed."
    if net not in _TORCHVISION_FILES:
        return False, f"LPIPS skipped: unknown backbone {net!r}; use one of {sorted(_TORCHVISION_FILES)}."
    spec = importlib.util.find_spec("lpips")
    linear = Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth"
    if not linear.is_file():
        return False, f"LPIPS skipped: {linear} is missing."
    if _hub_checkpoint(_TORCHVISION_FILES[net]) is None:
        return False, f"LPIPS skipped: backbone weights {_TORCHVISION_FILES[net]} are not in the torch hub cache (never downloaded)."
    return True, "LPIPS available."


def lpips_distance(preds: Sequence[ImageLike], gts: Sequence[ImageLike], net: str = "alex") -> float | None:
    """Mean LPIPS over frame pairs (lower is better), or None when :func:`lpips_available` says no."""
    if not lpips_available(net)[0]:
        return None
    import lpips
    import torch

    if net not in _LPIPS_MODELS:
        _LPIPS_MODELS[net] = lpips.LPIPS(net=net, verbose=False).eval()
    model = _LPIPS_MODELS[net]
    scores = []
    with torch.no_grad():
        for pred, gt in zip(preds, gts):
            p, g = _pair(pred, gt)
            tp = torch.from_numpy(p).permute(2, 0, 1)[None] * 2 - 1  # (1, 3, H, W) in [-1, 1]
            tg = torch.from_numpy(g).permute(2, 0, 1)[None] * 2 - 1
            scores.append(float(model(tp, tg).mean()))
    return float(np.mean(scores)) if scores else None


def fid_available() -> tuple[bool, str]:
    """(available, reason): FID needs ``torch-fidelity`` and its Inception weights in the torch hub cache."""
    for module in ("torch", "torch_fidelity"):
        if importlib.util.find_spec(module) is None:
            return False, f"FID skipped: the {module!r} package is not installed."
    if _hub_checkpoint(_INCEPTION_FILE) is None:
        return False, f"FID skipped: {_INCEPTION_FILE} is not in the torch hub cache (never downloaded)."
    return True, "FID available (biased with few images; compare only runs of equal size)."


def fid_score(preds: Sequence[ImageLike], gts: Sequence[ImageLike]) -> float | None:
    """FID between the predicted and ground-truth frame sets, or None when unavailable."""
    if not fid_available()[0]:
        return None
    import torch_fidelity

    with tempfile.TemporaryDirectory() as tmp:
        dirs = [os.path.join(tmp, "pred"), os.path.join(tmp, "gt")]
        for folder, images in zip(dirs, (preds, gts)):
            os.makedirs(folder)
            for i, image in enumerate(images):
                Image.fromarray((to_float(image) * 255).round().astype(np.uint8)).save(os.path.join(folder, f"{i:06d}.png"))
        result = torch_fidelity.calculate_metrics(
            input1=dirs[0], input2=dirs[1], fid=True, cuda=False, verbose=False,
            feature_extractor_weights_path=str(_hub_checkpoint(_INCEPTION_FILE)),
        )
    return float(result["frechet_inception_distance"])


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def score_sequence(
    pred_frames: Sequence[ImageLike],
    gt_frames: Sequence[ImageLike],
    keypoints: np.ndarray | None = None,
    threshold: float = FOREGROUND_THRESHOLD,
) -> dict:
    """The :data:`METRIC_KEYS` of one sequence: per-frame means of psnr, ssim_box, iou, color_error
    and (needs ``keypoints`` (F, 17, 3)) part_color_error with ``parts`` (per-part means), and the
    sequence's flicker (0.0 for one frame). Frames without a ground-truth figure are left out of
    ssim_box and color_error."""
    if len(pred_frames) != len(gt_frames) or not gt_frames:
        raise ValueError(f"need the same non-zero number of frames; got {len(pred_frames)} and {len(gt_frames)}.")
    pairs = [_pair(p, g) for p, g in zip(pred_frames, gt_frames)]
    result: dict = {
        "psnr": float(np.mean([psnr(p, g) for p, g in pairs])),
        "ssim_box": _nanmean([ssim_box(p, g, threshold) for p, g in pairs]),
        "iou": float(np.mean([silhouette_iou(p, g, threshold) for p, g in pairs])),
        "color_error": _nanmean([figure_color_error(p, g, threshold) for p, g in pairs]),
        "flicker": temporal_flicker([p for p, _ in pairs], [g for _, g in pairs]) if len(pairs) > 1 else 0.0,
    }
    if keypoints is not None:
        if len(keypoints) != len(gt_frames):
            raise ValueError(f"need keypoints for every frame; got {len(keypoints)} for {len(gt_frames)} frames.")
        per_part: dict[str, list[float]] = {}
        for (p, g), kp in zip(pairs, keypoints):
            for name, err in part_color_error(p, g, kp, threshold).items():
                per_part.setdefault(name, []).append(err)
        result["part_color_error"] = _nanmean(per_part.pop("mean", []))
        result["parts"] = {name: float(np.mean(v)) for name, v in per_part.items()}
    return result


def seam_ratio(frames: Sequence[ImageLike], joins: Sequence[int]) -> float:
    """How visible the joins of a video made in pieces are: the mean frame-to-frame change (mean absolute RGB
    difference, 0-1) into the frames at ``joins`` (the first frame of each new window or stream chunk) over the
    mean change into every other frame. 1: the joins are as smooth as the rest; larger: a seam shows. NaN when
    there is no join or no other frame."""
    if len(frames) < 3:
        return float("nan")
    arrays = [to_float(f) for f in frames]
    changes = np.array([np.abs(b - a).mean(dtype=np.float64) for a, b in zip(arrays[:-1], arrays[1:])])  # into t=1..
    at = sorted({t for t in joins if 1 <= t < len(frames)})
    others = [t for t in range(1, len(frames)) if t not in set(at)]
    if not at or not others:
        return float("nan")
    inside = changes[[t - 1 for t in others]].mean()
    return float(changes[[t - 1 for t in at]].mean() / inside) if inside > 0 else float("nan")
