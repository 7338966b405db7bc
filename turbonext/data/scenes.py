"""Shot-cut detection, frame by frame (a content detector in the spirit of PySceneDetect's).

Each frame is shrunk to a small thumbnail in HSV; the score of a frame is the mean absolute
difference of its hue, saturation and value from the previous frame's (0-255 scale). A score
above ``threshold`` is a hard cut, unless the previous cut is fewer than ``min_gap`` frames ago
(flashes). Motion inside a shot moves few pixels and scores low; a cut changes most of them.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from PIL import Image


class ShotCutDetector:
    """Streaming hard-cut detector: call :meth:`is_cut` once per frame, in order.

    Args:
        threshold: score above which a frame starts a new shot (default 30).
        min_gap: the fewest frames between two cuts.
        thumbnail: side of the square thumbnail the score is computed on.
    """

    def __init__(self, threshold: float = 30.0, min_gap: int = 3, thumbnail: int = 48) -> None:
        if threshold <= 0 or min_gap < 1 or thumbnail < 4:
            raise ValueError(
                f"threshold must be > 0, min_gap >= 1 and thumbnail >= 4; got threshold={threshold}, "
                f"min_gap={min_gap}, thumbnail={thumbnail}."
            )
        self.threshold, self.min_gap, self.thumbnail = threshold, min_gap, thumbnail
        self.reset()

    def reset(self) -> None:
        """Start a new video."""
        self._previous: np.ndarray | None = None
        self._since_cut = 0
        self.last_score = 0.0

    def _features(self, frame: np.ndarray) -> np.ndarray:
        small = Image.fromarray(frame).resize((self.thumbnail, self.thumbnail), Image.BILINEAR)
        return np.asarray(small.convert("HSV"), dtype=np.float32)

    @staticmethod
    def _difference(fa: np.ndarray, fb: np.ndarray) -> float:
        diff = np.abs(fa - fb)
        diff[..., 0] = np.minimum(diff[..., 0], 256.0 - diff[..., 0])  # hue is an angle
        return float(diff.mean())

    def score(self, a: np.ndarray, b: np.ndarray) -> float:
        """Content difference between two frames (RGB uint8): mean |dH|, |dS|, |dV|."""
        return self._difference(self._features(a), self._features(b))

    def is_cut(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` (RGB uint8) starts a new shot; the first frame of a video never does."""
        features = self._features(frame)
        cut = False
        if self._previous is not None:
            self.last_score = self._difference(features, self._previous)
            self._since_cut += 1
            if self.last_score > self.threshold and self._since_cut >= self.min_gap:
                cut = True
                self._since_cut = 0
        self._previous = features
        return cut


def detect_cuts(frames: Iterable[np.ndarray], threshold: float = 30.0, min_gap: int = 3) -> list[int]:
    """Indices of the frames that start a new shot (frame 0 excluded)."""
    detector = ShotCutDetector(threshold, min_gap)
    return [i for i, frame in enumerate(frames) if detector.is_cut(frame)]


def scene_ranges(num_frames: int, cuts: list[int]) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the scenes that ``cuts`` split ``num_frames`` frames into."""
    bounds = [0] + [c for c in sorted(set(cuts)) if 0 < c < num_frames] + [num_frames]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1) if bounds[i + 1] > bounds[i]]
