"""Pose accuracy of generated frames: does the rendered person stand in the driving pose?

A pose detector runs on every generated frame; its main person's keypoints are compared with the driving
pose's (the keypoints the pose map was drawn from):

* PCK@alpha: the fraction of the driving pose's visible keypoints whose detected position lies within
  ``alpha`` x the larger side of the driving pose's box (0.2 by default).
* OKS: COCO's object keypoint similarity, exp(-d^2 / (2 s^2 k^2)) averaged over the visible keypoints,
  s^2 the box area and k the per-keypoint COCO constants.

A frame where nobody is detected scores 0 on both. The detector's own ceiling is measured on the ground-truth
frames (``pose_accuracy(truth_frames, ...)``): a model cannot score above what the detector finds in real
pictures, so report both.
"""

from __future__ import annotations

import numpy as np


# COCO keypoint sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles), cocoapi's values
COCO_SIGMAS = np.array([0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
                        0.087, 0.087, 0.089, 0.089])
POSE_ACCURACY_KEYS = ("pck", "oks")


def _box(truth: np.ndarray, threshold: float) -> tuple[np.ndarray, float, float] | None:
    visible = truth[:, 2] >= threshold
    if visible.sum() < 2:
        return None
    xy = truth[visible, :2]
    w, h = np.ptp(xy[:, 0]), np.ptp(xy[:, 1])
    return visible, max(w, h), max(w * h, 1.0)


def pck(detected: np.ndarray | None, truth: np.ndarray, alpha: float = 0.2, threshold: float = 0.3) -> float:
    """PCK@``alpha`` of ``detected`` (17, 2+) against ``truth`` (17, 3); NaN when the truth has < 2 visible
    keypoints, 0 when nothing was detected."""
    box = _box(np.asarray(truth, float), threshold)
    if box is None:
        return float("nan")
    if detected is None:
        return 0.0
    visible, side, _ = box
    d = np.linalg.norm(np.asarray(detected, float)[:, :2] - np.asarray(truth, float)[:, :2], axis=1)
    return float(np.mean(d[visible] <= alpha * max(side, 1.0)))


def oks(detected: np.ndarray | None, truth: np.ndarray, threshold: float = 0.3) -> float:
    """COCO OKS of ``detected`` against ``truth``; NaN without a usable truth, 0 when nothing was detected."""
    box = _box(np.asarray(truth, float), threshold)
    if box is None:
        return float("nan")
    if detected is None:
        return 0.0
    visible, _, area = box
    d2 = np.sum((np.asarray(detected, float)[:, :2] - np.asarray(truth, float)[:, :2]) ** 2, axis=1)
    k2 = (2 * COCO_SIGMAS) ** 2
    return float(np.mean(np.exp(-d2[visible] / (2 * area * k2[visible]))))


def pose_accuracy(frames, keypoints: np.ndarray, detector, alpha: float = 0.2) -> dict:
    """Mean PCK and OKS of ``frames`` (PIL images or uint8 arrays) against ``keypoints`` (F, 17, 3), the largest
    detected person per frame; also "detected": the fraction of frames with anybody found."""
    if len(frames) != len(keypoints):
        raise ValueError(f"need keypoints for every frame; got {len(keypoints)} for {len(frames)} frames.")
    pcks, okss, found = [], [], 0
    for frame, truth in zip(frames, keypoints):
        people = [p for p in detector.detect(np.asarray(frame)) if p.box() is not None]
        person = max(people, key=lambda p: p.area()) if people else None
        found += person is not None
        xy = None if person is None else person.xy
        pcks.append(pck(xy, truth, alpha))
        okss.append(oks(xy, truth))
    return {"pck": float(np.nanmean(pcks)) if np.isfinite(pcks).any() else float("nan"),
            "oks": float(np.nanmean(okss)) if np.isfinite(okss).any() else float("nan"),
            "detected": found / max(len(frames), 1)}
