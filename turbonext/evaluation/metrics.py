"""Image and video metrics for pose transfer, with ground truth (numpy; torch only for LPIPS/FID).

* :func:`psnr`, :func:`ssim` (scikit-image): per-frame fidelity.
* :func:`silhouette_iou`: does the figure cover the right pixels (pose fidelity)? Foreground is
  every pixel whose brightest channel exceeds ``threshold`` (backgrounds are pure black).
* :func:`part_color_error`: does each body part keep the reference's colours (identity)? Regions
  (head, torso, upper/lower arms and legs) come from the ground-truth keypoints, restricted to the
  ground-truth foreground; the error is the mean absolute difference of the region's mean colour
  between prediction and ground truth, channels in [0, 1].
* :func:`background_brightness`: how clean the background is: the prediction's mean brightness (0-255)
  where the ground truth is black (0 = clean).
* :func:`temporal_flicker`: mean |pred_t - pred_{t-1}| minus the same for the ground truth, so a
  still ground truth with a flickering prediction scores > 0 and identical sequences score 0.
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


METRIC_KEYS = ("psnr", "ssim", "iou", "color_error", "flicker")  # what `turbonext eval` reports per sequence

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
    """Mean frame-to-frame change of the prediction minus that of the ground truth (in [0, 1]
    units); > 0 means the prediction changes more than it should, 0 for identical sequences."""
    if len(pred_frames) != len(gt_frames):
        raise ValueError(f"need as many predicted as ground-truth frames; got {len(pred_frames)} and {len(gt_frames)}.")
    if len(pred_frames) < 2:
        raise ValueError("temporal_flicker needs at least 2 frames.")
    p = np.stack([to_float(f) for f in pred_frames])  # (T, H, W, 3)
    g = np.stack([to_float(f) for f in gt_frames])
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} must have the same size.")
    return float(np.abs(np.diff(p, axis=0)).mean() - np.abs(np.diff(g, axis=0)).mean())


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


def score_sequence(
    pred_frames: Sequence[ImageLike],
    gt_frames: Sequence[ImageLike],
    keypoints: np.ndarray | None = None,
    threshold: float = FOREGROUND_THRESHOLD,
) -> dict:
    """All cheap metrics of one sequence: per-frame means of psnr, ssim, iou, part colour error
    (with ``parts``: per-part means; needs ``keypoints`` (F, 17, 3)) and the sequence's flicker."""
    if len(pred_frames) != len(gt_frames) or not gt_frames:
        raise ValueError(f"need the same non-zero number of frames; got {len(pred_frames)} and {len(gt_frames)}.")
    result: dict = {
        "psnr": float(np.mean([psnr(p, g) for p, g in zip(pred_frames, gt_frames)])),
        "ssim": float(np.mean([ssim(p, g) for p, g in zip(pred_frames, gt_frames)])),
        "iou": float(np.mean([silhouette_iou(p, g, threshold) for p, g in zip(pred_frames, gt_frames)])),
        "flicker": temporal_flicker(pred_frames, gt_frames) if len(gt_frames) > 1 else 0.0,
    }
    if keypoints is not None:
        if len(keypoints) != len(gt_frames):
            raise ValueError(f"need keypoints for every frame; got {len(keypoints)} for {len(gt_frames)} frames.")
        per_part: dict[str, list[float]] = {}
        for p, g, kp in zip(pred_frames, gt_frames, keypoints):
            for name, err in part_color_error(p, g, kp, threshold).items():
                per_part.setdefault(name, []).append(err)
        frame_means = [v for v in per_part.pop("mean", []) if np.isfinite(v)]
        result["color_error"] = float(np.mean(frame_means)) if frame_means else float("nan")
        result["parts"] = {name: float(np.mean(v)) for name, v in per_part.items()}
    return result
