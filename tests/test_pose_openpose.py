"""render_pose(style="openpose" / "musepose") and render_face_landmarks: the DWPose / RAIN conventions.

The expected colours and sizes are written out here from the convention (DWPose's draw_bodypose /
draw_handpose / draw_facepose and RAIN's ``patterns``), not read from turbonext's tables, so that a
table changed in the code cannot make these tests pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_pose_render import STANDING  # the same hand-placed person
from turbonext.pose import (
    POSE_STYLES,
    Person,
    coco_to_openpose,
    render_face_landmarks,
    render_pose,
)
from turbonext.pose.keypoints import KEYPOINT_INDEX


# A person facing the camera at 512 x 512, limbs apart so that no limb midpoint is covered by another
# limb or a dot. The neck is ((310 + 202) / 2, 140) = (256, 140).
NECK = (256, 140)

# DWPose's 18 colours (limb i and keypoint i), in RGB as the map is written.
COLORS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
]
# OpenPose-18 order and the 17 limbs DWPose draws (1-based limbSeq[:17] minus one), by keypoint name.
OP18 = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear"]
LIMBS17 = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
           (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
# matplotlib.colors.hsv_to_rgb([i / 20, 1, 1]) * 255, rounded: the 20 hand-edge colours.
HAND_EDGE_RGB = [
    (255, 0, 0), (255, 77, 0), (255, 153, 0), (255, 229, 0), (204, 255, 0), (128, 255, 0), (51, 255, 0),
    (0, 255, 25), (0, 255, 102), (0, 255, 179), (0, 255, 255), (0, 178, 255), (0, 102, 255), (0, 25, 255),
    (51, 0, 255), (128, 0, 255), (204, 0, 255), (255, 0, 230), (255, 0, 153), (255, 0, 77),
]


def _dim(color):
    return tuple(int(c * 0.6) for c in color)  # (canvas * 0.6).astype(uint8)


def _person(overrides=None, **extra) -> Person:
    kp = np.zeros((17, 3), np.float32)
    for name, (x, y) in STANDING.items():
        kp[KEYPOINT_INDEX[name]] = (x, y, 0.9)
    for name, value in (overrides or {}).items():
        kp[KEYPOINT_INDEX[name]] = value
    return Person(kp, **extra)


def _xy(name):
    return NECK if name == "neck" else STANDING[name]


def _px(image, x, y):
    return tuple(int(v) for v in np.asarray(image)[int(y), int(x)])


# ----------------------------------------------------------------------------------------- body


def test_neck_is_the_shoulders_midpoint_and_openpose_order():
    p = _person({"left_shoulder": (311, 141, 0.8), "right_shoulder": (202, 139, 0.6)})
    op = coco_to_openpose(p.keypoints)
    assert op.shape == (18, 3)
    assert np.allclose(op[1], (256.5, 140.0, 0.6))  # midpoint, the smaller confidence
    for j, name in enumerate(OP18):
        if name != "neck":
            assert np.array_equal(op[j], p[name]), name
    assert np.array_equal(p.openpose(), op)
    one_shoulder = coco_to_openpose(_person({"right_shoulder": (202, 140, 0.2)}).keypoints)
    assert np.array_equal(one_shoulder[1], (0, 0, 0))  # missing, not a midpoint with a low confidence


def test_limbs_have_the_convention_colours_at_60_percent():
    image = render_pose(_person(), 512, style="openpose")
    assert image.mode == "RGB" and image.size == (512, 512)
    for i, (a, b) in enumerate(LIMBS17):
        (xa, ya), (xb, yb) = _xy(OP18[a]), _xy(OP18[b])
        mid = ((xa + xb) / 2, (ya + yb) / 2)
        assert _px(image, *mid) == _dim(COLORS[i]), (OP18[a], OP18[b])
    assert _px(image, 5, 5) == (0, 0, 0)  # black background
    assert _px(image, 300, 30) == (0, 0, 0)  # no limb between the ears (DWPose never draws limbs 18, 19)


def test_limb_is_an_ellipse_of_half_width_4_at_every_size():
    # neck (256, 140) -> right shoulder (202, 140): horizontal; at its middle the ellipse spans y 136..144.
    for size, k in ((512, 1), (1024, 2)):
        p = _person().transformed(scale=k)
        column = np.asarray(render_pose(p, size, style="openpose"))[:, 229 * k]
        red = [y for y in range(size) if tuple(column[y]) == (153, 0, 0)]
        assert red == list(range(140 * k - 4, 140 * k + 5)), size  # 9 px: pixel widths are kept
    # the ellipse's long axis is the limb, 202..256; its two end pixels are covered by the limbs drawn
    # after it (right shoulder -> elbow at 202, neck -> left shoulder at 255..256)
    row = np.asarray(render_pose(_person(), 512, style="openpose", draw_joints=False))[140]
    red = [x for x in range(512) if tuple(row[x]) == (153, 0, 0)]
    assert red == list(range(203, 255))


def test_keypoint_dots_have_the_keypoint_colours():
    image = render_pose(_person(), 512, style="openpose")
    for j, name in enumerate(OP18):
        x, y = _xy(name)
        assert _px(image, x, y) == COLORS[j], name
        assert _px(image, x + 4, y) == COLORS[j] and _px(image, x, y - 4) == COLORS[j]  # radius 4
        assert _px(image, x + 3, y + 3) != COLORS[j]  # a disc, not a square
    no_dots = render_pose(_person(), 512, style="openpose", draw_joints=False)
    assert _px(no_dots, *STANDING["left_knee"]) == _dim(COLORS[11])  # the shin, drawn after the thigh


def test_a_missing_shoulder_drops_the_neck_and_its_limbs():
    full = render_pose(_person(), 512, style="openpose")
    image = render_pose(_person({"right_shoulder": (202, 140, 0.1)}), 512, style="openpose")
    assert _px(full, *NECK) == COLORS[1] and _px(image, *NECK) == (0, 0, 0)
    for b in ("left_shoulder", "right_shoulder", "right_hip", "left_hip", "nose"):
        (xb, yb) = STANDING[b]
        mid = ((NECK[0] + xb) / 2, (NECK[1] + yb) / 2)
        assert _px(full, *mid) != (0, 0, 0) and _px(image, *mid) == (0, 0, 0), b
    # the right arm loses its shoulder too; the left arm is still drawn
    assert _px(image, 172, 170) == (0, 0, 0)
    assert _px(image, 340, 170) == _dim(COLORS[4])
    # DWPose's rule: a body keypoint needs a confidence strictly above the threshold
    at_threshold = render_pose(_person({"left_ankle": (305, 470, 0.3)}), 512, style="openpose")
    assert _px(at_threshold, 305, 470) == (0, 0, 0)


def test_people_and_source_size():
    two = [_person(), _person().transformed(offset=(0, 20))]
    image = np.asarray(render_pose(two, 512, style="openpose"))
    assert tuple(image[140 + 20, 229]) == (153, 0, 0)
    half = _person().transformed(scale=0.5)
    scaled = render_pose(half, 512, style="openpose", source_size=(256, 256))
    assert np.array_equal(np.asarray(scaled), np.asarray(render_pose(_person(), 512, style="openpose")))


# ----------------------------------------------------------------------------------------- hands, face


def _hand(wrist, dx):
    """A hand of 21 points: the wrist, then 5 straight fingers of 4 points, spread apart."""
    pts = [wrist]
    for f in range(5):
        for k in range(1, 5):
            pts.append((wrist[0] + dx * (10 + 14 * k), wrist[1] - 40 + 20 * f + 2 * k))
    return np.c_[np.asarray(pts, np.float32), np.full(21, 0.9, np.float32)]


def test_hands_are_drawn_only_when_given():
    left = _hand((440, 280), +1)  # the person's left hand, beyond their left wrist (image right)
    right = _hand((72, 280), -1)
    without = render_pose(_person(), 512, style="openpose")
    with_hands = render_pose(_person(hands=np.stack([left, right])), 512, style="openpose")
    for hand in (left, right):
        for x, y, _ in hand[1:]:
            assert _px(without, x, y) == (0, 0, 0)
            assert _px(with_hands, x, y) == (0, 0, 255)  # blue dots of radius 4
        # edge 1 (points 1 -> 2) and edge 17 (points 17 -> 18): midpoints in their HSV colours
        for edge, (a, b) in ((1, (1, 2)), (17, (17, 18))):
            (xa, ya), (xb, yb) = hand[a, :2], hand[b, :2]
            assert _px(with_hands, (xa + xb) / 2, (ya + yb) / 2) == HAND_EDGE_RGB[edge]
    # a hand keypoint under the threshold is not drawn, nor its edges
    faint = left.copy()
    faint[4, 2] = 0.1
    image = render_pose(_person(hands=np.stack([faint, right])), 512, style="openpose")
    assert _px(image, *faint[4, :2]) == (0, 0, 0)
    assert _px(image, *faint[3, :2]) == (0, 0, 255)


def test_face_dots_are_drawn_only_when_given():
    face = np.zeros((68, 3), np.float32)
    face[:, 0] = 180 + 10 * (np.arange(68) % 17)
    face[:, 1] = 20 + 10 * (np.arange(68) // 17)
    face[:, 2] = 0.9
    face[5, 2] = 0.0  # missing
    image = render_pose(_person(face=face), 512, style="openpose", draw_joints=False)
    without = render_pose(_person(), 512, style="openpose", draw_joints=False)
    assert _px(image, *face[0, :2]) == (255, 255, 255) and _px(without, *face[0, :2]) == (0, 0, 0)
    assert _px(image, face[0, 0] + 3, face[0, 1]) == (255, 255, 255)  # radius 3
    assert _px(image, face[0, 0] + 4, face[0, 1]) != (255, 255, 255)
    assert _px(image, *face[5, :2]) == (0, 0, 0)


def test_person_hands_and_face_follow_transforms():
    hands = np.stack([_hand((440, 280), 1), _hand((72, 280), -1)])
    face = np.c_[np.random.default_rng(0).uniform(200, 300, (68, 2)), np.ones(68)].astype(np.float32)
    p = _person(hands=hands, face=face)
    assert p.hands.shape == (2, 21, 3) and p.face.shape == (68, 3)
    assert _person(hands=hands[..., :2]).hands[..., 2].min() == 1.0  # xy only: confident
    moved = p.transformed(scale=2, offset=(1, 0))
    assert np.allclose(moved.hands[..., 0], hands[..., 0] * 2 + 1) and np.allclose(moved.face[:, 1], face[:, 1] * 2)
    flipped = p.flipped(512)
    assert np.allclose(flipped.hands[0, :, 0], 512 - hands[1, :, 0])  # the right hand became the left one
    assert np.allclose(flipped.face[45, 0], 512 - face[36, 0])  # eye corners swap
    twice = flipped.flipped(512)
    assert np.allclose(twice.hands, hands) and np.allclose(twice.face, face)
    assert Person(p.keypoints).hands is None and Person(p.keypoints).face is None
    with pytest.raises(ValueError, match="hands"):
        Person(p.keypoints, hands=np.zeros((21, 3)))
    with pytest.raises(ValueError, match="68"):
        Person(p.keypoints, face=np.zeros((17, 3)))


# ----------------------------------------------------------------------------------------- styles


def test_default_style_is_unchanged_and_styles_differ():
    p = _person()
    default = np.asarray(render_pose(p, 512))
    assert np.array_equal(default, np.asarray(render_pose(p, 512, style="turbonext")))
    assert np.array_equal(default, np.asarray(render_pose(p, 512, 0.3, None, None, True)))
    assert not np.array_equal(default, np.asarray(render_pose(p, 512, style="openpose")))
    assert POSE_STYLES[0] == "turbonext" and "openpose" in POSE_STYLES


def test_unknown_style_is_a_clear_error():
    for bad in ("dwpose", "OpenPose", None):
        with pytest.raises(ValueError, match="turbonext.*openpose"):
            render_pose(_person(), 512, style=bad)
    with pytest.raises(ValueError, match="rain"):
        render_face_landmarks(np.zeros((68, 2)), 512, style="openpose")


def test_musepose_swaps_red_and_blue_and_widens_long_limbs():
    image = render_pose(_person(), 512, style="musepose")
    # limb 0 (neck -> right shoulder, 54 px long) in MusePose's maps: blue, half-width 5 (length 40-80)
    column = np.asarray(image)[:, 229]
    blue = [y for y in range(512) if tuple(column[y]) == (0, 0, 153)]
    assert blue == list(range(135, 146))
    assert _px(image, *NECK) == (0, 85, 255)  # the neck dot (255, 85, 0) with R and B swapped


# ----------------------------------------------------------------------------------------- RAIN faces

RAIN = [  # RAIN's `patterns`: landmark groups and RGB colours
    ([1, 2], (0, 255, 255)), ([4], (0, 255, 255)), ([8], (0, 255, 255)), ([12], (0, 255, 255)),
    ([15, 14], (0, 255, 255)), ([17], (128, 0, 255)), ([18, 19], (128, 0, 255)), ([20], (128, 0, 255)),
    ([23], (255, 0, 128)), ([24, 25], (255, 0, 128)), ([26], (255, 0, 128)), ([60], (0, 0, 255)),
    ([62], (0, 0, 255)), ([64], (0, 0, 255)), ([66], (0, 0, 255)), ([33, 30], (255, 0, 255)),
    ([36, 37], (255, 128, 128)), ([37, 38], (255, 128, 128)), ([38, 39], (255, 128, 128)),
    ([40, 39], (255, 128, 128)), ([41], (255, 128, 128)), ([42, 43], (128, 128, 255)),
    ([43, 44], (128, 128, 255)), ([44, 45], (128, 128, 255)), ([46], (128, 128, 255)), ([47, 42], (128, 128, 255)),
]


def _grid_face():
    """68 landmarks on a 10-column grid 40 px apart (every group mean lands on its own spot); landmark 27
    at (256, 100) and 8 at (256, 280): 180 px on a 512 map -> RAIN radius int(3 * 0.3515 / 0.3) = 3."""
    i = np.arange(68)
    face = np.c_[30 + 48 * (i % 10), 20 + 66 * (i // 10)].astype(np.float32)
    face[27], face[8] = (256, 100), (256, 280)
    return face


def test_rain_face_landmarks_put_the_pattern_colours_at_the_group_means():
    face = _grid_face()
    image = render_face_landmarks(face, 512)
    means = [face[idx].mean(axis=0) for idx, _ in RAIN]
    for (idx, color), (x, y) in zip(RAIN, means):
        others = [m for m in means if not np.allclose(m, (x, y))]
        if min(np.hypot(*(np.asarray(others) - (x, y)).T)) > 8:  # not overdrawn by a later group
            assert _px(image, x, y) == color, idx
            assert _px(image, int(x) + 3, y) == color and _px(image, int(x) + 4, y) == (0, 0, 0)  # radius 3
    drawn = np.asarray(image).reshape(-1, 3)
    assert {tuple(c) for c in drawn} == {(0, 0, 0)} | {c for _, c in RAIN}
    # a group with a missing landmark is not drawn; the radius follows the 27-8 distance
    faint = np.c_[face, np.ones(68, np.float32)]
    faint[41, 2] = 0.0
    x, y = face[41]
    assert _px(render_face_landmarks(faint, 512), x, y) == (0, 0, 0)
    small = face.copy()
    small[8] = (256, 130)  # 30 px -> radius max(int(3 * 0.0586 / 0.3), 1) = 1 (int(0.586) = 0)
    x, y = face[4]
    assert _px(render_face_landmarks(small, 512), int(x) + 1, y) == (0, 255, 255)
    assert _px(render_face_landmarks(small, 512), int(x) + 2, y) == (0, 0, 0)


def test_rain_faces_from_people_and_batches():
    face = _grid_face()
    one = np.asarray(render_face_landmarks(face, 512))
    assert np.array_equal(one, np.asarray(render_face_landmarks(face[None], 512)))
    assert np.array_equal(one, np.asarray(render_face_landmarks([_person(face=face), _person()], 512)))
    with pytest.raises(ValueError, match="68"):
        render_face_landmarks(np.zeros((17, 2)), 512)


# ----------------------------------------------------------------------------------------- rasteriser vs OpenCV


def test_rasteriser_matches_opencv():
    """The numpy rasteriser against cv2 itself: ellipse polygons, convex fills, filled circles, thick lines."""
    cv2 = pytest.importorskip("cv2")
    from turbonext.pose import render as r

    rng = np.random.default_rng(0)
    color = (200, 100, 50)
    c = np.asarray(color, np.uint8)
    for _ in range(150):
        cx, cy = (int(v) for v in rng.integers(-20, 120, 2))
        a, b, angle = int(rng.integers(0, 70)), int(rng.integers(0, 9)), int(rng.integers(-180, 181))
        poly = cv2.ellipse2Poly((cx, cy), (a, b), angle, 0, 360, 1)
        assert np.array_equal(poly, np.asarray(r._ellipse_polygon(cx, cy, a, b, angle))), (cx, cy, a, b, angle)
        ref, mine = np.zeros((90, 100, 3), np.uint8), np.zeros((90, 100, 3), np.uint8)
        cv2.fillConvexPoly(ref, poly, color)
        r._fill_convex(mine, [tuple(int(v) for v in p) for p in poly], c)
        assert np.array_equal(ref, mine), (cx, cy, a, b, angle)
        radius = int(rng.integers(0, 9))
        ref[:], mine[:] = 0, 0
        cv2.circle(ref, (cx, cy), radius, color, thickness=-1)
        r._disc(mine, cx, cy, radius, c)
        assert np.array_equal(ref, mine), (cx, cy, radius)
        # lines with both ends inside: newer cv2 (5.1 here) clips thick lines that leave the image
        # differently from OpenCV 4.8, which the rasteriser follows; inside the image they agree
        x1, x2 = (int(v) for v in rng.integers(0, 100, 2))
        y1, y2 = (int(v) for v in rng.integers(0, 90, 2))
        for thickness in (1, 2, 3, 5):
            ref[:], mine[:] = 0, 0
            cv2.line(ref, (x1, y1), (x2, y2), color, thickness)
            r._thick_line(mine, x1, y1, x2, y2, thickness, c)
            assert np.array_equal(ref, mine), (x1, y1, x2, y2, thickness)
