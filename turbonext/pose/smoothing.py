"""Temporal smoothing of keypoints for live input: a One-Euro filter per person track.

The One-Euro filter (Casiez et al., CHI 2012) is a low-pass filter whose cutoff rises with the
signal's speed: still joints are steadied hard (no webcam jitter), fast ones follow with little lag.
``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` how fast the cutoff grows with speed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from turbonext.pose.backends import PoseDetector
from turbonext.pose.keypoints import Person
from turbonext.pose.tracking import match_boxes


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Element-wise One-Euro filter over arrays of a fixed shape.

    Args:
        min_cutoff: cutoff frequency at rest, in Hz (lower: smoother, more lag).
        beta: speed coefficient (higher: less lag on fast motion).
        d_cutoff: cutoff for the speed estimate, in Hz.
        frequency: sample rate assumed when no timestamps are given.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0, frequency: float = 30.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or frequency <= 0 or beta < 0:
            raise ValueError(
                f"min_cutoff, d_cutoff and frequency must be > 0 and beta >= 0; got min_cutoff={min_cutoff}, "
                f"beta={beta}, d_cutoff={d_cutoff}, frequency={frequency}."
            )
        self.min_cutoff, self.beta, self.d_cutoff, self.frequency = min_cutoff, beta, d_cutoff, frequency
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, timestamp: float | None = None, valid: np.ndarray | None = None) -> np.ndarray:
        """Filter one sample.

        Args:
            x: the sample (any fixed shape).
            timestamp: its time in seconds; default: previous time + 1 / frequency.
            valid: optional boolean mask of x's shape; invalid elements pass through unchanged and
                restart from their next valid value.
        """
        x = np.asarray(x, dtype=np.float64)
        if timestamp is None:
            timestamp = 0.0 if self._t is None else self._t + 1.0 / self.frequency
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), timestamp
            self._fresh = np.ones(x.shape, bool) if valid is None else ~np.asarray(valid, bool)
            return x.copy()
        dt = max(timestamp - self._t, 1e-6)  # type: ignore[operator]
        dx = (x - self._x) / dt
        dx_hat = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)  # type: ignore[operator]
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        x_hat = self._x + _alpha(cutoff, dt) * (x - self._x)
        mask = np.ones(x.shape, bool) if valid is None else np.asarray(valid, bool)
        restart = self._fresh & mask  # first valid value after a gap: take it as is
        x_hat = np.where(restart | ~mask, x, x_hat)
        dx_hat = np.where(restart | ~mask, 0.0, dx_hat)
        self._x, self._dx, self._t = x_hat, dx_hat, timestamp
        self._fresh = ~mask
        return x_hat.copy()


class PoseSmoother:
    """One-Euro smoothing of every person's keypoints, with people followed by box overlap.

    Call once per frame with that frame's detections; returns the same people with smoothed xy
    (confidences untouched). Keypoints under ``threshold`` are not filtered and restart the filter
    when they reappear. Tracks unseen for ``max_missed`` frames are dropped.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0, frequency: float = 30.0,
                 threshold: float = 0.3, min_iou: float = 0.2, max_missed: int = 10) -> None:
        self.filter_kwargs = {"min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff, "frequency": frequency}
        OneEuroFilter(**self.filter_kwargs)  # validate now
        self.threshold, self.min_iou, self.max_missed = threshold, min_iou, max_missed
        self.reset()

    def reset(self) -> None:
        """Drop all tracks (e.g. at a scene cut or when the webcam restarts)."""
        self._tracks: dict[int, dict[str, Any]] = {}
        self._next_id = 0

    @property
    def num_tracks(self) -> int:
        return len(self._tracks)

    def __call__(self, people: list[Person], timestamp: float | None = None) -> list[Person]:
        ids = list(self._tracks)
        boxes = [p.box(self.threshold) for p in people]
        matches = match_boxes([self._tracks[i]["box"] for i in ids], boxes, self.min_iou)
        out: list[Person] = []
        seen: set[int] = set()
        for index, person in enumerate(people):
            if index in matches:
                track_id = ids[matches[index]]
            else:
                track_id, self._next_id = self._next_id, self._next_id + 1
                self._tracks[track_id] = {"filter": OneEuroFilter(**self.filter_kwargs), "box": None, "missed": 0}
            track = self._tracks[track_id]
            valid = np.repeat(person.visible(self.threshold)[:, None], 2, axis=1)
            kp = person.keypoints.copy()
            kp[:, :2] = track["filter"](person.xy, timestamp, valid).astype(np.float32)
            track["box"], track["missed"] = boxes[index], 0
            seen.add(track_id)
            out.append(Person(kp, person.score, person.bbox))
        for track_id in list(self._tracks):
            if track_id not in seen:
                self._tracks[track_id]["missed"] += 1
                if self._tracks[track_id]["missed"] > self.max_missed:
                    del self._tracks[track_id]
        return out


class SmoothedPoseDetector(PoseDetector):
    """Wraps any :class:`PoseDetector` and smooths its output over time (see :class:`PoseSmoother`)."""

    def __init__(self, detector: PoseDetector, **smoother_kwargs: Any) -> None:
        self.detector = detector
        self.smoother = PoseSmoother(**smoother_kwargs)
        self.name = f"{detector.name}+one-euro"

    @property
    def cache_id(self) -> str:
        s = self.smoother
        return f"{self.detector.cache_id}+one-euro:{sorted(s.filter_kwargs.items())}:{s.threshold}:{s.min_iou}:{s.max_missed}"

    def detect(self, image: Image.Image | np.ndarray, timestamp: float | None = None) -> list[Person]:
        return self.smoother(self.detector.detect(image), timestamp)

    def reset(self) -> None:
        """Forget the tracks and the wrapped detector's own tracking state (a new scene)."""
        self.smoother.reset()
        self.detector.reset()

    def close(self) -> None:
        self.detector.close()
