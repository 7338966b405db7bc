"""Per-frame analysis of one scene: main person, square crop, person mask, keypoints in the crop.

This is the expensive part of data preparation (pose detection and segmentation), so its result
for a whole scene packs into a few arrays that :mod:`turbonext.data.prepare` caches on disk
(:meth:`SceneAnalysis.to_arrays` / :meth:`SceneAnalysis.from_arrays`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from turbonext.data.crop import CropBox, crop_square, keypoints_to_crop, square_crop_box
from turbonext.pose.backends import PoseDetector
from turbonext.pose.keypoints import Person
from turbonext.pose.segmentation import PersonSegmenter
from turbonext.pose.smoothing import OneEuroFilter
from turbonext.pose.tracking import MainPersonTracker


@dataclass
class FrameAnalysis:
    """One frame with a person: where to crop, which pixels are the person, the pose in the crop."""

    crop: CropBox
    keypoints: np.ndarray  # (17, 3) in pixels of the size x size crop
    mask: np.ndarray  # (size, size) bool, True on the person


@dataclass
class SceneAnalysis:
    """All frames of a scene, in order: ``frames[i]`` is None where no person was found."""

    size: int
    frames: list[FrameAnalysis | None] = field(default_factory=list)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Pack into numeric arrays (masks bit-packed) for :class:`turbonext.utils.feature_cache.FeatureCache`."""
        kept = [f for f in self.frames if f is not None]
        return {
            "size": np.array(self.size, np.int64),
            "has_person": np.array([f is not None for f in self.frames], bool),
            "crops": np.array([f.crop for f in kept], np.float64).reshape(-1, 3),
            "keypoints": np.array([f.keypoints for f in kept], np.float32).reshape(-1, 17, 3),
            "masks": np.array([np.packbits(f.mask.reshape(-1)) for f in kept], np.uint8).reshape(len(kept), -1),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "SceneAnalysis":
        """Inverse of :meth:`to_arrays`."""
        size = int(arrays["size"])
        kept = iter(range(int(arrays["has_person"].sum())))
        frames: list[FrameAnalysis | None] = []
        for has in arrays["has_person"]:
            if not has:
                frames.append(None)
                continue
            i = next(kept)
            mask = np.unpackbits(arrays["masks"][i], count=size * size).reshape(size, size).astype(bool)
            frames.append(FrameAnalysis(tuple(float(v) for v in arrays["crops"][i]), arrays["keypoints"][i], mask))  # type: ignore[arg-type]
        return cls(size, frames)


class SceneAnalyzer:
    """Follows the main person through one scene and produces a :class:`FrameAnalysis` per frame.

    Args:
        detector: pose detector.
        segmenter: person segmenter.
        size: output side in pixels.
        margin: crop margin around the person, as a fraction of their longer side.
        threshold: keypoint confidence threshold (for boxes and drawing).
        smooth_crop: steady the crop over time with a One-Euro filter (less jitter between frames).
        mask_threshold: mask values at or above this are the person.
    """

    def __init__(self, detector: PoseDetector, segmenter: PersonSegmenter, size: int = 512, margin: float = 0.2,
                 threshold: float = 0.3, smooth_crop: bool = True, mask_threshold: float = 0.5) -> None:
        self.detector, self.segmenter = detector, segmenter
        self.size, self.margin, self.threshold = size, margin, threshold
        self.smooth_crop, self.mask_threshold = smooth_crop, mask_threshold
        self.tracker = MainPersonTracker(threshold=threshold)
        self._crop_filter = OneEuroFilter(min_cutoff=0.5, beta=0.02)

    def reset(self) -> None:
        """Call at the start of every scene: forget the followed person and the crop history."""
        self.tracker.reset()
        self._crop_filter.reset()

    def __call__(self, frame: np.ndarray, timestamp: float | None = None) -> FrameAnalysis | None:
        """Analyse one RGB uint8 frame; None when no person is found."""
        person: Person | None = self.tracker(self.detector.detect(frame))
        if person is None:
            return None
        box = person.box(self.threshold)
        if box is None:
            return None
        crop = square_crop_box(box, self.margin)
        if self.smooth_crop:
            cx, cy, side = self._crop_filter(np.array([crop[0] + crop[2] / 2, crop[1] + crop[2] / 2, crop[2]]), timestamp)
            crop = (float(cx - side / 2), float(cy - side / 2), float(side))
        mask_full = self.segmenter.segment(frame, box)
        mask = crop_square(mask_full.astype(np.float32), crop, self.size, Image.BILINEAR) >= self.mask_threshold
        keypoints = keypoints_to_crop(person, crop, self.size).keypoints
        return FrameAnalysis(crop, keypoints, mask)
