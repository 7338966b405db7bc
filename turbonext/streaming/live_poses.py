"""The pose maps that drive a live stream: each webcam frame's detected people -> one pose map.

Per frame: follow the people (one, or everyone), One-Euro smooth their keypoints, frame them in a square crop
that follows them slowly (the training framing: a square around the person, black outside the frame), and
render their skeletons into one map. ``people="largest"`` follows one person, the largest at the start and then
whoever overlaps them most (:class:`~turbonext.pose.tracking.MainPersonTracker`): the live path as it always
was. ``people="all"`` follows up to ``max_people`` people, each keeping their id, smoothing and last pose
(:class:`~turbonext.pose.people_tracker.PeopleTracker`), all drawn into the map in a crop around the group.
The model renders everyone in the map with the reference's look (it draws whatever skeletons it is given).

Use it as the preparation step of a :class:`~turbonext.streaming.runner.LatestFrameRunner`
(``prepare=lambda rgb: maps(detector.detect(rgb))``), or as :class:`~turbonext.jobs.live.LiveSession` does.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from turbonext.data.crop import CropBox, keypoints_to_crop, square_crop_box
from turbonext.pose.keypoints import BBox, Person
from turbonext.pose.people_tracker import PeopleTracker, Track, people_box
from turbonext.pose.render import POSE_STYLES, render_pose
from turbonext.pose.smoothing import OneEuroFilter
from turbonext.pose.tracking import MainPersonTracker


PEOPLE_MODES = ("largest", "all")


class FollowingSquare:
    """A square crop around a box that follows it slowly (the camera stays calm): the first box sets the crop,
    then every update moves it a fraction ``follow`` of the way towards the box's square (0: fixed, 1: jump)."""

    def __init__(self, margin: float = 0.2, follow: float = 0.05) -> None:
        if not 0.0 <= follow <= 1.0:
            raise ValueError(f"follow must be in [0, 1] (fraction of the way per frame); got {follow}.")
        self.margin, self.follow = margin, follow
        self.crop: CropBox | None = None

    def reset(self) -> None:
        self.crop = None

    def update(self, box: BBox | None) -> CropBox | None:
        """Move towards ``box``'s square; keeps the last crop when there is no box."""
        if box is None:
            return self.crop
        target = np.asarray(square_crop_box(box, margin=self.margin))
        if self.crop is None:
            self.crop = tuple(float(v) for v in target)
        else:
            current = np.asarray(self.crop)
            self.crop = tuple(float(v) for v in current + self.follow * (target - current))
        return self.crop


class LivePoseMaps:
    """Detected people in, the pose map that drives the stream out (see the module docstring).

    Args:
        size: the pose map's side in pixels (the stream's size).
        style: the pose-map style the model was trained on (:data:`turbonext.pose.POSE_STYLES`).
        people: "largest" (follow one person, the default) or "all" (everyone, up to ``max_people``).
        max_people: with "all", how many people are followed at once.
        margin / follow: the crop: space around the person (or group), as a fraction of their size, and how fast
            it follows them (:class:`FollowingSquare`).
        min_cutoff / beta: One-Euro smoothing of the keypoints (lower ``min_cutoff``: steadier).
        max_missed: with "all", frames a person may go undetected (holding their last pose) before they are dropped.
    """

    def __init__(self, size: int, style: str = "turbonext", people: str = "largest", max_people: int = 4,
                 margin: float = 0.2, follow: float = 0.05, min_cutoff: float = 1.0, beta: float = 0.05,
                 max_missed: int = 5) -> None:
        if people not in PEOPLE_MODES:
            raise ValueError(f"people must be one of {PEOPLE_MODES} (follow the largest person, or everyone); "
                             f"got {people!r}.")
        if style not in POSE_STYLES:
            raise ValueError(f"style must be one of {POSE_STYLES}, got {style!r}.")
        self.size, self.style, self.people = int(size), style, people
        self.main = MainPersonTracker()
        self.smoother = OneEuroFilter(min_cutoff=min_cutoff, beta=beta)
        self.tracker = PeopleTracker(max_people=max_people, max_missed=max_missed, min_cutoff=min_cutoff, beta=beta)
        self.framer = FollowingSquare(margin=margin, follow=follow)
        self.reset()

    def reset(self) -> None:
        """Forget the people followed and the crop (a new reference, a new webcam session)."""
        self.main.reset()
        self.smoother.reset()
        self.tracker.reset()
        self.framer.reset()
        self.people_in_view = 0  # the people followed who were detected in the last frame
        self._ids: set[int] = set()

    @property
    def tracks(self) -> list[Track]:
        """With "all": the people followed now, each with their id (:class:`~turbonext.pose.people_tracker.Track`)."""
        return self.tracker.tracks

    def __call__(self, detections: Sequence[Person], timestamp: float | None = None) -> np.ndarray | None:
        """One frame's detected people -> the pose map (size x size uint8 RGB), or None when nobody is followed
        (the caller holds its last map: the figure stands still instead of vanishing)."""
        if self.people == "largest":
            people = self._largest(detections, timestamp)
        else:
            people = self._everyone(detections, timestamp)
        if not people:
            return None
        crop = self.framer.crop
        return np.array(render_pose([keypoints_to_crop(p, crop, self.size) for p in people],
                                    size=(self.size, self.size), style=self.style))

    def _largest(self, detections: Sequence[Person], timestamp: float | None) -> list[Person]:
        person = self.main(list(detections))
        self.people_in_view = int(person is not None)
        if person is None:
            return []
        kp = person.keypoints.copy()
        valid = np.repeat(person.visible()[:, None], 2, axis=1)
        kp[:, :2] = self.smoother(person.xy, timestamp, valid).astype(np.float32)
        person = Person(kp, person.score, person.bbox)
        self.framer.update(person.box())
        return [person]

    def _everyone(self, detections: Sequence[Person], timestamp: float | None) -> list[Person]:
        tracks = self.tracker(detections, timestamp)
        self.people_in_view = sum(t.missed == 0 for t in tracks)
        ids = {t.id for t in tracks}
        if ids - self._ids:  # someone new: frame the whole group at once (a slow follow would leave them outside)
            self.framer.reset()
        self._ids = ids
        people = [t.person for t in tracks]  # by id: a stable drawing order
        self.framer.update(people_box(people))
        return people
