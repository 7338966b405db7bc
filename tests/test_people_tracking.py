"""Several people, live (issue 16): every tracked person keeps their id, people who leave are dropped, and the
pose map that drives the stream holds every followed person's skeleton (``LivePoseMaps(people="all")``)."""

from __future__ import annotations

import numpy as np
import pytest

from turbonext.data.crop import keypoints_to_crop
from turbonext.pose.keypoints import KEYPOINT_INDEX, Person
from turbonext.pose.people_tracker import PeopleTracker
from turbonext.streaming.live_poses import LivePoseMaps


# a standing person 100 px tall, centred on x = 0, feet at y = 0 (up is -y); arms down or raised
_BODY = {"nose": (0, -92), "left_eye": (3, -95), "right_eye": (-3, -95), "left_ear": (6, -93), "right_ear": (-6, -93),
         "left_shoulder": (12, -80), "right_shoulder": (-12, -80), "left_hip": (8, -50), "right_hip": (-8, -50),
         "left_knee": (9, -25), "right_knee": (-9, -25), "left_ankle": (10, 0), "right_ankle": (-10, 0)}
_ARMS = {"down": {"left_elbow": (16, -65), "right_elbow": (-16, -65), "left_wrist": (18, -50), "right_wrist": (-18, -50)},
         "up": {"left_elbow": (20, -95), "right_elbow": (-20, -95), "left_wrist": (22, -112), "right_wrist": (-22, -112)}}


def person(x: float, y: float = 150.0, arms: str = "down", scale: float = 1.0, rng=None) -> Person:
    kp = np.zeros((17, 3), np.float32)
    for name, (dx, dy) in {**_BODY, **_ARMS[arms]}.items():
        kp[KEYPOINT_INDEX[name]] = (x + dx * scale, y + dy * scale, 0.9)
    if rng is not None:  # detector jitter
        kp[:, :2] += rng.normal(0, 1.5, (17, 2))
    return Person(kp)


@pytest.mark.parametrize("arms", [("up", "down"), ("down", "down")], ids=["different-poses", "same-pose"])
def test_two_people_crossing_paths_keep_their_ids(arms):
    """A walks right, B walks left; at frame 10 they stand on the same spot (the same box). Detections come in a
    shuffled order. Each keeps their id all the way: by their skeletons, and (same pose) by where each was going."""
    rng = np.random.default_rng(0)
    tracker = PeopleTracker(max_people=4)
    ids = {"A": set(), "B": set()}
    for f in range(21):
        people = {"A": person(50 + 10 * f, arms=arms[0], rng=rng), "B": person(250 - 10 * f, arms=arms[1], rng=rng)}
        order = list(rng.permutation(["A", "B"]))
        tracks = tracker([people[name] for name in order], timestamp=f / 10)
        assert len(tracks) == 2 and all(t.missed == 0 for t in tracks)
        for t in tracks:
            ids[order[t.detection]].add(t.id)
    assert ids == {"A": {0}, "B": {1}} or ids == {"A": {1}, "B": {0}}, ids  # no swap, ever


def test_a_person_who_leaves_is_dropped_after_max_missed_frames():
    tracker = PeopleTracker(max_missed=3)
    for f in range(5):
        tracks = tracker([person(60 + f), person(200 - f, arms="up")])
    a, b = (next(t.id for t in tracks if t.detection == i) for i in (0, 1))
    assert {a, b} == {0, 1}
    last_pose = next(t for t in tracks if t.id == b).person.keypoints.copy()
    for gone in range(1, 4):  # B left: held (last pose) for 3 missed frames
        tracks = {t.id: t for t in tracker([person(65 + gone)])}
        assert set(tracks) == {a, b} and tracks[a].missed == 0 and tracks[a].detection == 0
        assert tracks[b].missed == gone and tracks[b].detection is None
        np.testing.assert_array_equal(tracks[b].person.keypoints, last_pose)
    tracks = tracker([person(70)])  # the 4th missed frame: dropped
    assert [t.id for t in tracks] == [a] and tracks[0].missed == 0
    tracks = tracker([person(71), person(200, arms="up")])  # someone coming back later is a new person
    assert [t.id for t in tracks] == sorted([a, 2])


def test_at_most_max_people_are_followed_the_largest_first():
    tracker = PeopleTracker(max_people=2)
    small, big, bigger = person(50, scale=0.5), person(150, scale=1.0), person(260, scale=1.2)
    tracks = tracker([small, big, bigger])
    assert len(tracks) == 2 and sorted(t.detection for t in tracks) == [1, 2]
    with pytest.raises(ValueError, match="max_people must be an integer >= 1"):
        PeopleTracker(max_people=0)


def test_tracks_are_smoothed_one_by_one():
    """Each track has its own One-Euro filter: a person standing still keeps a steady pose while another jumps."""
    rng = np.random.default_rng(1)
    tracker = PeopleTracker(min_cutoff=0.5, beta=0.0)
    raw_jitter, smooth_jitter = [], []
    for f in range(30):
        still = person(60, rng=rng)
        tracks = tracker([still, person(150 + 3 * f, arms="up")], timestamp=f / 30)
        if f:
            smoothed = next(t for t in tracks if t.detection == 0).person
            raw_jitter.append(np.abs(still.xy - person(60).xy).mean())
            smooth_jitter.append(np.abs(smoothed.xy - person(60).xy).mean())
    assert np.mean(smooth_jitter[5:]) < 0.6 * np.mean(raw_jitter[5:])


def _drawn_near(pose_map: np.ndarray, p: Person, crop, size: int) -> bool:
    """Whether the map has skeleton pixels on ``p``'s torso (mid-way from the left shoulder to the left hip)."""
    q = keypoints_to_crop(p, crop, size)
    x, y = ((q["left_shoulder"][:2] + q["left_hip"][:2]) / 2).round().astype(int)
    if not (0 <= x < size and 0 <= y < size):
        return False  # outside the map
    return bool(pose_map[max(0, y - 2):y + 3, max(0, x - 2):x + 3].any())


def test_the_pose_map_holds_every_followed_persons_skeleton():
    left, right = person(60, arms="up"), person(240, scale=1.4)  # the right one is the larger
    everyone = LivePoseMaps(size=128, people="all")
    pose_map = everyone([left, right])
    assert pose_map.shape == (128, 128, 3) and pose_map.dtype == np.uint8
    crop = everyone.framer.crop
    assert _drawn_near(pose_map, left, crop, 128) and _drawn_near(pose_map, right, crop, 128)
    assert [t.id for t in everyone.tracks] == [0, 1] and everyone.people_in_view == 2

    one = LivePoseMaps(size=128)  # the default: the largest person only, as the live path always did
    pose_map = one([left, right])
    assert _drawn_near(pose_map, right, one.framer.crop, 128) and not _drawn_near(pose_map, left, one.framer.crop, 128)
    assert one.people_in_view == 1
    assert one([]) is None and one.people_in_view == 0  # nobody: the caller holds its last map

    with pytest.raises(ValueError, match="people must be one of"):
        LivePoseMaps(size=128, people="everyone")


def test_a_new_person_is_framed_at_once():
    maps = LivePoseMaps(size=128, people="all", follow=0.05)
    for _ in range(3):
        maps([person(100)])
    newcomer = person(300, arms="up")
    pose_map = maps([person(100), newcomer])
    assert _drawn_near(pose_map, newcomer, maps.framer.crop, 128)


class ScriptedDetector:
    """A pose detector that returns the next scene's people on every call."""

    name = "scripted"

    def __init__(self, scenes):
        self.scenes, self.frame = scenes, 0

    def detect(self, image):
        self.frame += 1
        return self.scenes[min(self.frame, len(self.scenes)) - 1]

    def reset(self):
        pass

    def close(self):
        pass


def _live_path_as_it_was(size: int, margin: float = 0.2, follow: float = 0.05, min_cutoff: float = 1.0,
                         beta: float = 0.05):
    """LiveSession's own pose maps before it used LivePoseMaps (issue 16), written out: the largest person then
    whoever overlaps them, One-Euro smoothed, in a square crop that follows them; None when nobody is seen."""
    from turbonext.data.crop import square_crop_box
    from turbonext.jobs.reference import pose_map_in_crop
    from turbonext.pose.smoothing import OneEuroFilter
    from turbonext.pose.tracking import MainPersonTracker

    tracker, smoother, crop = MainPersonTracker(), OneEuroFilter(min_cutoff=min_cutoff, beta=beta), [None]

    def pose_map(detections, timestamp):
        main = tracker(list(detections))
        if main is None:
            return None
        kp = main.keypoints.copy()
        kp[:, :2] = smoother(main.xy, timestamp, np.repeat(main.visible()[:, None], 2, axis=1)).astype(np.float32)
        main = Person(kp, main.score, main.bbox)
        target = np.asarray(square_crop_box(main.box(), margin=margin))
        current = target if crop[0] is None else np.asarray(crop[0]) + follow * (target - np.asarray(crop[0]))
        crop[0] = tuple(float(v) for v in current)
        return pose_map_in_crop(main, crop[0], size)

    return pose_map


@pytest.mark.parametrize("settings", [{}, dict(margin=0.3, follow=0.2, min_cutoff=0.5, beta=0.1)],
                         ids=["defaults", "tuned"])
def test_largest_is_the_live_path_as_it_was(tiny_pipe_factory, settings):
    """``LiveSession`` (``people="largest"``, the default) through ``LivePoseMaps`` draws byte for byte the maps it
    drew with its own tracker, smoother and crop (one person: the largest, then whoever overlaps them; smoothed; in
    a slowly following crop), so switching changed nothing a user sees; frames with nobody hold the last map."""
    from turbonext.jobs.live import LiveSession

    rng = np.random.default_rng(3)
    scenes = []
    for f in range(24):
        scene = [person(60 + 4 * f, rng=rng), person(200 - 3 * f, arms="up", scale=1.2, rng=rng)]
        if f % 9 == 4:
            scene = []  # nobody for a frame
        elif f % 11 == 5:
            scene = scene[:1]  # only the smaller one
        elif 14 <= f < 17:
            scene = [person(300, scale=1.5, rng=rng), *scene]  # a larger newcomer: the main person stays
        scenes.append(scene)

    live = LiveSession(tiny_pipe_factory(), ScriptedDetector(scenes), size=64, **settings)
    as_it_was = _live_path_as_it_was(64, **settings)
    webcam = np.full((240, 320, 3), 90, np.uint8)
    held = None
    for f, detections in enumerate(scenes):
        got = live.make_pose_map(webcam, timestamp=f / 10)
        expected = as_it_was(detections, f / 10)
        if expected is None:
            assert not live.person_in_view and held is not None
            expected = held  # LiveSession holds its last map
        np.testing.assert_array_equal(got, expected)
        held = expected
    assert live.frames_without_person == sum(not scene for scene in scenes)


def test_a_live_session_draws_everyone_or_the_largest(tiny_pipe_factory):
    """Two people in front of the webcam: ``people="all"`` draws both skeletons into the map that drives the stream,
    ``"largest"`` (the default) only the larger one; :meth:`LiveSession.set_people` switches on the next frame."""
    from turbonext.jobs.live import LiveSession

    pipe = tiny_pipe_factory()
    left, right = person(60, arms="up"), person(240, scale=1.4)  # the right one is the larger
    webcam = np.full((240, 320, 3), 90, np.uint8)
    everyone = LiveSession(pipe, ScriptedDetector([[left, right]]), size=64, people="all")
    pose_map = everyone.make_pose_map(webcam)
    crop = everyone.poses.framer.crop
    assert everyone.people == "all" and everyone.person_in_view
    assert _drawn_near(pose_map, left, crop, 64) and _drawn_near(pose_map, right, crop, 64)

    one = LiveSession(pipe, ScriptedDetector([[left, right]]), size=64)
    pose_map = one.make_pose_map(webcam)
    crop = one.poses.framer.crop
    assert one.people == "largest"
    assert _drawn_near(pose_map, right, crop, 64) and not _drawn_near(pose_map, left, crop, 64)

    one.set_people("all")  # while streaming: from the next frame on
    pose_map = one.make_pose_map(webcam)
    crop = one.poses.framer.crop
    assert _drawn_near(pose_map, left, crop, 64) and _drawn_near(pose_map, right, crop, 64)
    with pytest.raises(ValueError, match="people must be one of"):
        one.set_people("everyone")
    assert one.people == "all"  # a bad choice changes nothing
    with pytest.raises(ValueError, match="people must be one of"):
        LiveSession(pipe, ScriptedDetector([[left]]), size=64, people="both")


def test_everyone_streams_through_the_tiny_pipeline(tiny_pipe_factory):
    """The whole live path with ``people="all"``: the reference, webcam frames with two people, rendered frames."""
    import time

    from turbonext.jobs.live import LiveSession

    two = [person(60, arms="up"), person(240, scale=1.4)]
    reference = [person(150, scale=1.5)]  # the photo: one person
    live = LiveSession(tiny_pipe_factory(), ScriptedDetector([reference] + [two] * 1000), size=64, people="all",
                       num_inference_steps=2, window=4, frames_per_level=1)
    live.set_reference(np.full((300, 300, 3), 120, np.uint8))
    try:
        out = None
        for i in range(150):
            out = live.process(np.full((240, 320, 3), i % 200 + 30, np.uint8))
            if out is not None:
                break
            time.sleep(0.02)
        assert out is not None and out.shape == (64, 64, 3)
        assert [t.id for t in live.poses.tracks] == [0, 1] and live.person_in_view
    finally:
        live.discard()
