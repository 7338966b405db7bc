"""Following several people at once: every person keeps their id from frame to frame (live multi-person input).

:class:`PeopleTracker` matches each frame's detections to the people it follows by where each of them is expected
to be: their last detected keypoints moved on by their recent velocity (constant-velocity prediction). The cost
of a pairing is the mean distance between the predicted and the detected keypoints (over the joints visible in
both; the boxes' centres when fewer than 3 are), in units of the person's size, plus one minus the overlap (IoU)
of the predicted and detected boxes. Pairs are taken cheapest first, and a pairing costlier than ``max_distance``
person-sizes is never made. Keypoints, not boxes alone, are what keep two people apart when they cross: at the
crossing their boxes coincide, their skeletons do not, and each is still where their own motion takes them.

Each track has its own One-Euro filter (:class:`~turbonext.pose.smoothing.OneEuroFilter`), so one person's
jitter smoothing never mixes with another's. A person not detected keeps their track (and last pose) for up to
``max_missed`` frames (a brief occlusion), then the track is dropped. At most ``max_people`` are followed; new
people beyond that are ignored until a slot frees up (the largest new people come first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from turbonext.pose.keypoints import BBox, Person
from turbonext.pose.smoothing import OneEuroFilter
from turbonext.pose.tracking import box_iou


@dataclass
class Track:
    """One followed person.

    Attributes:
        id: the person's id, kept for as long as the track lives (never reused by this tracker).
        person: their pose, One-Euro smoothed (the last one seen while they are missed).
        raw: their last detection, unsmoothed.
        detection: the index of their detection in this frame's list of people; None when missed this frame.
        missed: frames since they were last seen (0: seen in this frame).
        seen: frames in which they were seen.
        velocity: (2,) pixels per frame: how their box centre has been moving.
    """

    id: int
    person: Person
    raw: Person
    detection: int | None = 0
    missed: int = 0
    seen: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float64))
    filter: OneEuroFilter | None = field(default=None, repr=False)

    def predicted(self, threshold: float = 0.3) -> tuple[np.ndarray, BBox | None]:
        """Where they should be now: their last keypoints (17, 2) and box moved on by ``velocity`` per frame."""
        shift = self.velocity * (self.missed + 1)
        box = self.raw.box(threshold)
        moved = None if box is None else (box[0] + shift[0], box[1] + shift[1], box[2] + shift[0], box[3] + shift[1])
        return self.raw.xy + shift.astype(np.float32), moved


def _centre(box: BBox) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def _size(box: BBox) -> float:
    return max(box[2] - box[0], box[3] - box[1], 1.0)


def people_box(people: Sequence[Person], threshold: float = 0.3) -> BBox | None:
    """The box (x0, y0, x1, y1) around every person's box (None if nobody has one)."""
    boxes = [b for b in (p.box(threshold) for p in people) if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


class PeopleTracker:
    """Follow up to ``max_people`` people, each with an id that stays theirs (see the module docstring).

    Args:
        max_people: how many people are followed at once.
        max_missed: frames a person may go undetected before their track is dropped.
        max_distance: the largest jump between frames, in person-sizes, that still counts as the same person
            (live detection runs at the model's pace, a few frames per second, so people move far between calls).
        threshold: keypoint confidence below which a joint counts as not visible.
        smoothing: One-Euro smooth every track's keypoints (``min_cutoff``, ``beta``: see ``OneEuroFilter``).
    """

    def __init__(self, max_people: int = 4, max_missed: int = 5, max_distance: float = 1.0, threshold: float = 0.3,
                 smoothing: bool = True, min_cutoff: float = 1.0, beta: float = 0.05) -> None:
        if isinstance(max_people, bool) or not isinstance(max_people, int) or max_people < 1:
            raise ValueError(f"max_people must be an integer >= 1, got {max_people!r}.")
        if max_missed < 0 or max_distance <= 0:
            raise ValueError(f"max_missed must be >= 0 and max_distance > 0; got {max_missed}, {max_distance}.")
        self.max_people, self.max_missed, self.max_distance = max_people, max_missed, max_distance
        self.threshold, self.smoothing = threshold, smoothing
        self.filter_kwargs = {"min_cutoff": min_cutoff, "beta": beta}
        OneEuroFilter(**self.filter_kwargs)  # validate now
        self.reset()

    def reset(self) -> None:
        """Forget everyone (a new scene, the webcam restarted)."""
        self._tracks: dict[int, Track] = {}
        self._next_id = 0

    @property
    def tracks(self) -> list[Track]:
        """Every live track, seen in the last frame or missed for at most ``max_missed`` frames, by id."""
        return [self._tracks[i] for i in sorted(self._tracks)]

    def cost(self, track: Track, person: Person) -> float:
        """How unlikely it is that ``person`` is ``track``'s person now (inf: not them)."""
        box = person.box(self.threshold)
        predicted_xy, predicted_box = track.predicted(self.threshold)
        if box is None or predicted_box is None:
            return float("inf")
        scale = _size(predicted_box)
        both = track.raw.visible(self.threshold) & person.visible(self.threshold)
        if both.sum() >= 3:
            distance = float(np.linalg.norm(predicted_xy[both] - person.xy[both], axis=1).mean()) / scale
        else:
            distance = float(np.linalg.norm(_centre(predicted_box) - _centre(box))) / scale
        if distance > self.max_distance:
            return float("inf")
        return distance + 1.0 - box_iou(predicted_box, box)

    def __call__(self, people: Sequence[Person], timestamp: float | None = None) -> list[Track]:
        """Update with one frame's detections; returns every live track (:attr:`tracks`), by id."""
        people = list(people)
        pairs = sorted((self.cost(track, person), track.id, index)
                       for track in self._tracks.values() for index, person in enumerate(people))
        matched: dict[int, int] = {}  # track id -> detection index
        taken: set[int] = set()
        for cost, track_id, index in pairs:
            if np.isfinite(cost) and track_id not in matched and index not in taken:
                matched[track_id] = index
                taken.add(index)
        for track_id, track in list(self._tracks.items()):
            if track_id in matched:
                self._update(track, people[matched[track_id]], matched[track_id], timestamp)
            else:
                track.missed, track.detection = track.missed + 1, None
                if track.missed > self.max_missed:
                    del self._tracks[track_id]
        new = sorted((i for i, p in enumerate(people) if i not in taken and p.box(self.threshold) is not None),
                     key=lambda i: -people[i].area(self.threshold))
        for index in new[: max(0, self.max_people - len(self._tracks))]:
            self._start(people[index], index, timestamp)
        return self.tracks

    def _smooth(self, track: Track, person: Person, timestamp: float | None) -> Person:
        if track.filter is None:
            return person
        kp = person.keypoints.copy()
        valid = np.repeat(person.visible(self.threshold)[:, None], 2, axis=1)
        kp[:, :2] = track.filter(person.xy, timestamp, valid).astype(np.float32)
        return Person(kp, person.score, person.bbox)

    def _start(self, person: Person, index: int, timestamp: float | None) -> None:
        track = Track(id=self._next_id, person=person, raw=person, detection=index,
                      filter=OneEuroFilter(**self.filter_kwargs) if self.smoothing else None)
        track.person = self._smooth(track, person, timestamp)
        self._tracks[track.id] = track
        self._next_id += 1

    def _update(self, track: Track, person: Person, index: int, timestamp: float | None) -> None:
        old, new = track.raw.box(self.threshold), person.box(self.threshold)
        measured = (_centre(new) - _centre(old)) / (track.missed + 1)  # per frame over the gap
        track.velocity = measured if track.seen == 1 else 0.5 * track.velocity + 0.5 * measured
        track.raw, track.detection, track.missed, track.seen = person, index, 0, track.seen + 1
        track.person = self._smooth(track, person, timestamp)
