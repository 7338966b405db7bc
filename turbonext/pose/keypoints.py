"""COCO-17 keypoints: the names, their order, and a small typed structure for one person.

Every detector in :mod:`turbonext.pose.detectors` returns a list of :class:`Person`; the renderer
(:func:`turbonext.pose.render.render_pose`) and the data-preparation code consume them. Keypoints
are always in pixels of the image they were detected in, with a confidence in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np


#: The 17 COCO keypoints, in COCO order (the order of YOLO pose models and of ``Person.keypoints``).
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS = len(COCO_KEYPOINTS)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
#: The five face keypoints (drawn as dots only, never joined by lines).
FACE_KEYPOINTS: tuple[int, ...] = (0, 1, 2, 3, 4)
#: ``FLIP_INDEX[i]`` is the keypoint that ``i`` becomes in a horizontally mirrored image.
FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

BBox = tuple[float, float, float, float]


def _as_keypoint_array(keypoints: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Validate and convert keypoints to a float32 array of shape (17, 3)."""
    array = np.asarray(keypoints, dtype=np.float32)
    if array.shape == (NUM_KEYPOINTS, 2):  # xy only: treat every keypoint as fully confident
        array = np.concatenate([array, np.ones((NUM_KEYPOINTS, 1), np.float32)], axis=1)
    if array.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(
            f"keypoints must have shape (17, 3) holding x px, y px, confidence (or (17, 2) for xy "
            f"only) in COCO-17 order; got shape {array.shape}."
        )
    return array


@dataclass
class Person:
    """One detected person.

    Attributes:
        keypoints: float32 array (17, 3): x in pixels, y in pixels, confidence in [0, 1], COCO order.
        score: the detector's confidence that this is a person (1.0 when unknown).
        bbox: optional (x0, y0, x1, y1) box in pixels; see :meth:`box` for a fallback.
    """

    keypoints: np.ndarray
    score: float = 1.0
    bbox: BBox | None = field(default=None)

    def __post_init__(self) -> None:
        self.keypoints = _as_keypoint_array(self.keypoints)
        self.score = float(self.score)
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise ValueError(f"bbox must be (x0, y0, x1, y1); got {self.bbox!r}.")
            self.bbox = tuple(float(v) for v in self.bbox)  # type: ignore[assignment]

    # ----------------------------------------------------------------- accessors
    @property
    def xy(self) -> np.ndarray:
        """(17, 2) pixel coordinates."""
        return self.keypoints[:, :2]

    @property
    def confidence(self) -> np.ndarray:
        """(17,) keypoint confidences."""
        return self.keypoints[:, 2]

    def __getitem__(self, name: str) -> np.ndarray:
        """``person["left_wrist"]`` -> array (x, y, confidence)."""
        if name not in KEYPOINT_INDEX:
            raise KeyError(f"unknown keypoint {name!r}; expected one of {', '.join(COCO_KEYPOINTS)}.")
        return self.keypoints[KEYPOINT_INDEX[name]]

    def visible(self, threshold: float = 0.3) -> np.ndarray:
        """Boolean mask (17,) of keypoints with confidence >= ``threshold``."""
        return self.confidence >= threshold

    def box(self, threshold: float = 0.3) -> BBox | None:
        """The detector's box, else the box around the visible keypoints (None if none are visible)."""
        if self.bbox is not None:
            return self.bbox
        pts = self.xy[self.visible(threshold)]
        if len(pts) == 0:
            return None
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return (float(x0), float(y0), float(x1), float(y1))

    def area(self, threshold: float = 0.3) -> float:
        """Area of :meth:`box` in square pixels (0 when there is no box)."""
        box = self.box(threshold)
        if box is None:
            return 0.0
        return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])

    # ----------------------------------------------------------------- transforms
    def transformed(self, scale: float | tuple[float, float] = 1.0, offset: tuple[float, float] = (0.0, 0.0)) -> "Person":
        """A copy with ``xy' = xy * scale + offset`` (for crops and resizes); confidence unchanged."""
        sx, sy = (scale, scale) if np.isscalar(scale) else scale  # type: ignore[misc]
        kp = self.keypoints.copy()
        kp[:, 0] = kp[:, 0] * sx + offset[0]
        kp[:, 1] = kp[:, 1] * sy + offset[1]
        bbox = None
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            bbox = (x0 * sx + offset[0], y0 * sy + offset[1], x1 * sx + offset[0], y1 * sy + offset[1])
        return Person(kp, self.score, bbox)

    def flipped(self, width: float) -> "Person":
        """The same person in an image mirrored left-right (left and right keypoints swap names)."""
        kp = self.keypoints[list(FLIP_INDEX)].copy()
        kp[:, 0] = width - kp[:, 0]
        bbox = None
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            bbox = (width - x1, y0, width - x0, y1)
        return Person(kp, self.score, bbox)

    @classmethod
    def from_array(cls, keypoints: np.ndarray, score: float = 1.0, bbox: BBox | None = None) -> "Person":
        """Build from a (17, 3) or (17, 2) array."""
        return cls(np.array(keypoints, dtype=np.float32, copy=True), score, bbox)


def people_to_array(people: Iterable[Person]) -> np.ndarray:
    """Stack people into a float32 array (N, 17, 3); (0, 17, 3) for no people."""
    arrays = [p.keypoints for p in people]
    if not arrays:
        return np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
    return np.stack(arrays).astype(np.float32)


def people_from_array(
    keypoints: np.ndarray,
    scores: Sequence[float] | None = None,
    bboxes: Sequence[BBox | None] | None = None,
) -> list[Person]:
    """Split an array (N, 17, 3) (or a single (17, 3)) into a list of :class:`Person`."""
    array = np.asarray(keypoints, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] not in ((NUM_KEYPOINTS, 3), (NUM_KEYPOINTS, 2)):
        raise ValueError(f"expected keypoints of shape (N, 17, 3) or (17, 3); got {array.shape}.")
    n = array.shape[0]
    if scores is not None and len(scores) != n:
        raise ValueError(f"got {len(scores)} scores for {n} people.")
    if bboxes is not None and len(bboxes) != n:
        raise ValueError(f"got {len(bboxes)} boxes for {n} people.")
    return [
        Person(array[i].copy(), 1.0 if scores is None else scores[i], None if bboxes is None else bboxes[i])
        for i in range(n)
    ]


def as_people(people: "Person | Iterable[Person] | np.ndarray") -> list[Person]:
    """Accept a Person, a list of Person, an array (N, 17, 3) or a single (17, 3); return a list."""
    if isinstance(people, Person):
        return [people]
    if isinstance(people, np.ndarray):
        return people_from_array(people)
    result = list(people)
    for item in result:
        if not isinstance(item, Person):
            if isinstance(item, np.ndarray):
                return people_from_array(np.stack([np.asarray(p, np.float32) for p in result]))
            raise ValueError(
                f"people must be a list of turbonext.pose.Person or a numpy array (N, 17, 3); "
                f"got a list holding {type(item).__name__}."
            )
    return result
