"""COCO-17 keypoints: the names, their order, and a small typed structure for one person.

Every detector in :mod:`turbonext.pose.detectors` returns a list of :class:`Person`; the renderer
(:func:`turbonext.pose.render.render_pose`) and the data-preparation code consume them. Keypoints
are always in pixels of the image they were detected in, with a confidence in [0, 1].

A :class:`Person` may also carry hands (2 x 21 keypoints) and a face (68 landmarks), in the
COCO-WholeBody / DWPose layouts. turbonext's detectors fill neither; a caller that runs a whole-body
or face-landmark detector of its own can attach them, and the ``"openpose"`` style draws them.
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

#: The 18 OpenPose body keypoints, in the order DWPose / ControlNet pose maps use (the neck is not a COCO
#: keypoint: :func:`coco_to_openpose` makes it the midpoint of the shoulders).
OPENPOSE_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
#: ``COCO_TO_OPENPOSE[j]`` is the COCO-17 index of OpenPose keypoint ``j`` (-1 for the neck).
COCO_TO_OPENPOSE: tuple[int, ...] = tuple(
    -1 if name == "neck" else KEYPOINT_INDEX[name] for name in OPENPOSE_KEYPOINTS
)
#: Keypoints per hand: wrist, then 4 per finger from the thumb to the little finger (COCO-WholeBody order).
NUM_HAND_KEYPOINTS = 21
#: Face landmarks: the 68-point iBUG / 300-W layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
#: mouth 48-67), also COCO-WholeBody's face order.
NUM_FACE_LANDMARKS = 68
#: ``FACE_FLIP_INDEX[i]`` is the landmark that ``i`` becomes in a horizontally mirrored image.
FACE_FLIP_INDEX: tuple[int, ...] = (
    tuple(range(16, -1, -1))  # jaw
    + tuple(range(26, 16, -1))  # brows
    + (27, 28, 29, 30)  # nose bridge
    + (35, 34, 33, 32, 31)  # nose bottom
    + (45, 44, 43, 42, 47, 46)  # one eye -> the other
    + (39, 38, 37, 36, 41, 40)
    + (54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55)  # outer lips
    + (64, 63, 62, 61, 60, 67, 66, 65)  # inner lips
)


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


def _as_points(points: np.ndarray | Sequence, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Validate optional hand / face points: float32 of ``shape + (3,)``; xy only means confidence 1."""
    array = np.asarray(points, dtype=np.float32)
    if array.shape == shape + (2,):
        array = np.concatenate([array, np.ones(shape + (1,), np.float32)], axis=-1)
    if array.shape != shape + (3,):
        dims = ", ".join(str(d) for d in shape)
        raise ValueError(
            f"{what} must have shape ({dims}, 3) holding x px, y px, confidence (or ({dims}, 2)); "
            f"got shape {array.shape}."
        )
    return array


def coco_to_openpose(keypoints: np.ndarray | Sequence[Sequence[float]], threshold: float = 0.3) -> np.ndarray:
    """COCO-17 keypoints (17, 3) -> OpenPose-18 keypoints (18, 3), in :data:`OPENPOSE_KEYPOINTS` order.

    The neck is the midpoint of the two shoulders when both have a confidence above ``threshold`` (as
    DWPose builds it); its confidence is then the smaller of the two, else it is missing (0, 0, 0).
    """
    kp = _as_keypoint_array(keypoints)
    out = np.zeros((len(OPENPOSE_KEYPOINTS), 3), np.float32)
    for j, i in enumerate(COCO_TO_OPENPOSE):
        if i >= 0:
            out[j] = kp[i]
    left, right = kp[KEYPOINT_INDEX["left_shoulder"]], kp[KEYPOINT_INDEX["right_shoulder"]]
    if left[2] > threshold and right[2] > threshold:
        neck = OPENPOSE_KEYPOINTS.index("neck")
        out[neck, :2] = (left[:2] + right[:2]) / np.float32(2)
        out[neck, 2] = min(left[2], right[2])
    return out


@dataclass
class Person:
    """One detected person.

    Attributes:
        keypoints: float32 array (17, 3): x in pixels, y in pixels, confidence in [0, 1], COCO order.
        score: the detector's confidence that this is a person (1.0 when unknown).
        bbox: optional (x0, y0, x1, y1) box in pixels; see :meth:`box` for a fallback.
        hands: optional float32 array (2, 21, 3), the person's [left hand, right hand], each 21 keypoints
            (x px, y px, confidence) in COCO-WholeBody / OpenPose hand order; a missing hand has
            confidence 0. turbonext's detectors leave it None (body only).
        face: optional float32 array (68, 3): 68 face landmarks (x px, y px, confidence), iBUG order.
            turbonext's detectors leave it None.
    """

    keypoints: np.ndarray
    score: float = 1.0
    bbox: BBox | None = field(default=None)
    hands: np.ndarray | None = field(default=None)
    face: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.keypoints = _as_keypoint_array(self.keypoints)
        self.score = float(self.score)
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise ValueError(f"bbox must be (x0, y0, x1, y1); got {self.bbox!r}.")
            self.bbox = tuple(float(v) for v in self.bbox)  # type: ignore[assignment]
        if self.hands is not None:
            self.hands = _as_points(self.hands, (2, NUM_HAND_KEYPOINTS), "hands ([left, right] x 21 keypoints)")
        if self.face is not None:
            self.face = _as_points(self.face, (NUM_FACE_LANDMARKS,), "face (68 landmarks)")

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
        extra = {}
        for name in ("hands", "face"):
            points = getattr(self, name)
            if points is not None:
                points = points.copy()
                points[..., 0] = points[..., 0] * sx + offset[0]
                points[..., 1] = points[..., 1] * sy + offset[1]
                extra[name] = points
        return Person(kp, self.score, bbox, **extra)

    def flipped(self, width: float) -> "Person":
        """The same person in an image mirrored left-right (left and right keypoints swap names)."""
        kp = self.keypoints[list(FLIP_INDEX)].copy()
        kp[:, 0] = width - kp[:, 0]
        bbox = None
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            bbox = (width - x1, y0, width - x0, y1)
        extra = {}
        if self.hands is not None:  # the left hand becomes the right one
            extra["hands"] = self.hands[::-1].copy()
        if self.face is not None:
            extra["face"] = self.face[list(FACE_FLIP_INDEX)].copy()
        for points in extra.values():
            points[..., 0] = width - points[..., 0]
        return Person(kp, self.score, bbox, **extra)

    @classmethod
    def from_array(cls, keypoints: np.ndarray, score: float = 1.0, bbox: BBox | None = None) -> "Person":
        """Build from a (17, 3) or (17, 2) array."""
        return cls(np.array(keypoints, dtype=np.float32, copy=True), score, bbox)

    def openpose(self, threshold: float = 0.3) -> np.ndarray:
        """The body as OpenPose-18 keypoints (18, 3); see :func:`coco_to_openpose`."""
        return coco_to_openpose(self.keypoints, threshold)


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
