"""A small motion library: COCO-17 keypoints of a 3D stick figure seen by an orthographic camera.

Each motion (walk, wave, squat, jump, turn, kick, dance) maps a time ``t`` (in frames) and a few
random parameters (speed, amplitude, facing, side) to joint angles of a 3D skeleton
(:class:`BodyShape` gives its bone lengths). Forward kinematics puts the joints in 3D, the feet on
the ground, and a rotation about the vertical axis (yaw) turns the body; the orthographic camera
then drops depth. Because the skeleton is 3D, a "turn" swaps the person's left and right in the
image, and the face keypoints disappear when the face looks away, as they would from a detector.

Body frame (body units, 1.0 ~ standing height): X = the person's left, Y = down, Z = the person's
forward. World/camera frame after yaw: X = image right, Y = image down, Z = towards the camera.

Public API: :data:`MOTIONS` (names), :class:`MotionClip` (a placed, timed motion: keypoints in
pixels for any ``t``) and :func:`sample_clip`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np


MOTIONS: tuple[str, ...] = ("walk", "wave", "squat", "jump", "turn", "kick", "dance")

# COCO-17 indices.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 11, 12, 13, 14, 15, 16

FOOT_HEIGHT = 0.035  # ankle height above the ground, body units


@dataclass(frozen=True)
class BodyShape:
    """Bone lengths of the skeleton, in body units (1.0 ~ standing height)."""

    shoulder_half: float = 0.115  # half the distance between the shoulder joints
    hip_half: float = 0.085  # half the distance between the hip joints
    torso: float = 0.30  # mid-hip to mid-shoulder
    neck: float = 0.10  # mid-shoulder to the centre of the head
    head: float = 0.066  # head radius
    upper_arm: float = 0.165
    forearm: float = 0.15
    thigh: float = 0.235
    shin: float = 0.235
    girth: float = 1.0  # limb and torso thickness multiplier (used by the figure)

    @classmethod
    def random(cls, rng: np.random.Generator) -> "BodyShape":
        """A plausible random body: broad or narrow, long- or short-legged, slim or stocky."""
        leg = rng.uniform(0.92, 1.08)
        arm = rng.uniform(0.94, 1.06)
        return cls(
            shoulder_half=rng.uniform(0.098, 0.132),
            hip_half=rng.uniform(0.072, 0.098),
            torso=rng.uniform(0.28, 0.32),
            neck=rng.uniform(0.095, 0.11),
            head=rng.uniform(0.060, 0.072),
            upper_arm=0.165 * arm,
            forearm=0.15 * arm,
            thigh=0.235 * leg,
            shin=0.235 * leg,
            girth=rng.uniform(0.85, 1.3),
        )


Limb = tuple[float, float, float, float]  # (abduction, flexion) of the upper segment, then lower; degrees


@dataclass
class Pose3D:
    """Joint angles of one frame. Limb angles are in degrees, in the body frame.

    A segment direction is given by (abduction, flexion): (0, 0) points down, abduction 90 points
    sideways away from the body, 180 straight up; flexion 90 points forward (in front of the body).
    """

    yaw: float = 0.0  # degrees, 0 = facing the camera, 90 = facing image right
    lean: float = 0.0  # forward lean of the upper body, degrees
    roll: float = 0.0  # sideways tilt of the upper body towards the person's left, degrees
    lift: float = 0.0  # feet above the ground (jumping), body units
    x: float = 0.0  # position along the image x axis, body units
    arm_l: Limb = (8.0, 0.0, 6.0, 10.0)
    arm_r: Limb = (8.0, 0.0, 6.0, 10.0)
    leg_l: Limb = (3.0, 0.0, 2.0, 0.0)
    leg_r: Limb = (3.0, 0.0, 2.0, 0.0)


def _direction(abduction: float, flexion: float, side: float) -> np.ndarray:
    a, f = math.radians(abduction), math.radians(flexion)
    return np.array([side * math.sin(a) * math.cos(f), math.cos(a) * math.cos(f), math.sin(f)])


def _rot_x(deg: float) -> np.ndarray:  # rotation about X; _rot_x(-lean) tips the upper body forward
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rot_y(deg: float) -> np.ndarray:  # yaw: forward (0,0,1) -> (sin, 0, cos)
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


# Face keypoints relative to the head centre (in head radii) and their outward normals.
_FACE_OFFSETS = np.array(
    [[0.0, 0.2, 1.0], [0.38, -0.12, 0.88], [-0.38, -0.12, 0.88], [0.95, 0.05, -0.05], [-0.95, 0.05, -0.05]]
)
_FACE_NORMALS = np.array([[0.0, 0.0, 1.0], [0.3, 0.0, 0.95], [-0.3, 0.0, 0.95], [1.0, 0.0, -0.1], [-1.0, 0.0, -0.1]])
_FACE_MIN_FACING = np.array([-0.2, 0.05, 0.05, -0.35, -0.35])  # visible when normal_z exceeds this


def skeleton_3d(pose: Pose3D, shape: BodyShape) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics: joints (17, 3) in world body units (ground at Y=0) and visibility (17,)."""
    joints = np.zeros((17, 3))
    for side, hip, knee, ankle, leg in ((1.0, L_HIP, L_KNEE, L_ANKLE, pose.leg_l), (-1.0, R_HIP, R_KNEE, R_ANKLE, pose.leg_r)):
        joints[hip] = (side * shape.hip_half, 0.0, 0.0)
        joints[knee] = joints[hip] + shape.thigh * _direction(leg[0], leg[1], side)
        joints[ankle] = joints[knee] + shape.shin * _direction(leg[2], leg[3], side)
    # Upper body, built upright around the mid-hip, then leaned and rolled as one piece.
    upper = np.zeros((17, 3))
    for side, sh, el, wr, arm in ((1.0, L_SHOULDER, L_ELBOW, L_WRIST, pose.arm_l), (-1.0, R_SHOULDER, R_ELBOW, R_WRIST, pose.arm_r)):
        upper[sh] = (side * shape.shoulder_half, -shape.torso, 0.0)
        upper[el] = upper[sh] + shape.upper_arm * _direction(arm[0], arm[1], side)
        upper[wr] = upper[el] + shape.forearm * _direction(arm[2], arm[3], side)
    head_centre = np.array([0.0, -shape.torso - shape.neck, 0.0])
    upper[:5] = head_centre + _FACE_OFFSETS * shape.head
    rot = _rot_z(pose.roll) @ _rot_x(-pose.lean)
    idx = [NOSE, L_EYE, R_EYE, L_EAR, R_EAR, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST]
    joints[idx] = upper[idx] @ rot.T
    normals = _FACE_NORMALS @ rot.T
    # Feet on the ground (or above it when jumping), then yaw and position.
    ground = joints[[L_ANKLE, R_ANKLE], 1].max() + FOOT_HEIGHT
    joints[:, 1] -= ground + pose.lift
    yaw = _rot_y(pose.yaw)
    joints = joints @ yaw.T
    normals = normals @ yaw.T
    joints[:, 0] += pose.x
    visible = np.ones(17)
    visible[:5] = (normals[:, 2] / np.linalg.norm(normals, axis=1) > _FACE_MIN_FACING).astype(float)
    return joints, visible


# ----------------------------------------------------------------------------- motions
# Each motion: sample(rng) -> params dict; pose(t, params) -> Pose3D. ``t`` is in frames.

def _side_yaw(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi) * rng.choice([-1.0, 1.0]))


def _common(rng: np.random.Generator, lo: float, hi: float, yaw_lo: float, yaw_hi: float) -> dict:
    return {"speed": float(rng.uniform(lo, hi)), "phase": float(rng.uniform(0, 1)), "yaw": _side_yaw(rng, yaw_lo, yaw_hi)}


def _walk_sample(rng: np.random.Generator) -> dict:
    return {**_common(rng, 1 / 18, 1 / 10, 35, 100), "amp": float(rng.uniform(18, 30)), "arm": float(rng.uniform(15, 35))}


def _walk(t: float, p: dict) -> Pose3D:
    ph = 2 * math.pi * (p["speed"] * t + p["phase"])
    a, s, c = p["amp"], math.sin(ph), math.cos(ph)
    th_l, th_r = a * s, -a * s
    bend_l, bend_r = 5 + 45 * max(0.0, c), 5 + 45 * max(0.0, -c)
    # A gait cycle is two steps of ~2 * leg * sin(amp); the figure travels at half that (partly a
    # treadmill) along its facing, so it stays large in frame.
    stride = 4 * 0.47 * math.sin(math.radians(a))
    x = 0.5 * math.sin(math.radians(p["yaw"])) * stride * p["speed"] * t
    return Pose3D(
        yaw=p["yaw"], lean=4.0, x=x,
        arm_l=(8, -p["arm"] * s, 6, -p["arm"] * s + 20), arm_r=(8, p["arm"] * s, 6, p["arm"] * s + 20),
        leg_l=(3, th_l, 2, th_l - bend_l), leg_r=(3, th_r, 2, th_r - bend_r),
    )


def _wave_sample(rng: np.random.Generator) -> dict:
    return {**_common(rng, 1 / 9, 1 / 5, 0, 35), "side": int(rng.integers(0, 3)), "raise": float(rng.uniform(100, 140))}


def _wave(t: float, p: dict) -> Pose3D:
    ph = 2 * math.pi * (p["speed"] * t + p["phase"])
    waving: Limb = (p["raise"], 10.0, 175 + 28 * math.sin(ph), 10.0)
    rest: Limb = (10.0, 0.0, 8.0, 15.0)
    arm_l = waving if p["side"] in (0, 2) else rest
    arm_r = waving if p["side"] in (1, 2) else rest
    return Pose3D(yaw=p["yaw"], roll=3 * math.sin(ph), arm_l=arm_l, arm_r=arm_r, leg_l=(5, 0, 4, 0), leg_r=(4, 0, 3, 0))


def _squat_sample(rng: np.random.Generator) -> dict:
    return {**_common(rng, 1 / 20, 1 / 11, 0, 75), "depth": float(rng.uniform(0.6, 1.0))}


def _squat(t: float, p: dict) -> Pose3D:
    d = p["depth"] * 0.5 * (1 - math.cos(2 * math.pi * (p["speed"] * t + p["phase"])))
    leg: Limb = (10, 95 * d, 6, -30 * d)
    arm: Limb = (10, 85 * d, 8, 90 * d + 5)
    return Pose3D(yaw=p["yaw"], lean=38 * d, arm_l=arm, arm_r=arm, leg_l=leg, leg_r=leg)


def _jump_sample(rng: np.random.Generator) -> dict:
    return {**_common(rng, 1 / 16, 1 / 10, 0, 80), "height": float(rng.uniform(0.1, 0.22))}


def _jump(t: float, p: dict) -> Pose3D:
    u = (p["speed"] * t + p["phase"]) % 1.0
    air = 0.0
    if u < 0.25:  # crouch
        c = math.sin(0.5 * math.pi * u / 0.25)
    elif u < 0.32:  # push off
        c = 1.0 - (u - 0.25) / 0.07
    elif u < 0.72:  # airborne
        air = math.sin(math.pi * (u - 0.32) / 0.4)
        c = 0.2 * air
    else:  # landing
        c = 0.7 * math.sin(math.pi * (u - 0.72) / 0.28)
    leg: Limb = (6, 75 * c, 4, -25 * c)
    arm_flex = -45 * c * (1 - air) + 165 * air
    arm: Limb = (12 + 20 * air, arm_flex, 10 + 20 * air, arm_flex + 10)
    return Pose3D(yaw=p["yaw"], lean=30 * c, lift=p["height"] * air, arm_l=arm, arm_r=arm, leg_l=leg, leg_r=leg)


def _turn_sample(rng: np.random.Generator) -> dict:
    p = _common(rng, 1 / 30, 1 / 14, 0, 40)
    p["direction"] = float(rng.choice([-1.0, 1.0]))
    p["hand"] = int(rng.integers(0, 2))
    return p


def _turn(t: float, p: dict) -> Pose3D:
    yaw = p["yaw"] + p["direction"] * 360.0 * p["speed"] * t
    raised: Limb = (55.0, 20.0, 120.0, 20.0)  # one arm held out and up so the turn shows
    rest: Limb = (14.0, 5.0, 10.0, 20.0)
    arm_l, arm_r = (raised, rest) if p["hand"] == 0 else (rest, raised)
    return Pose3D(yaw=yaw, arm_l=arm_l, arm_r=arm_r, leg_l=(5, 4, 3, 0), leg_r=(5, -4, 3, -6))


def _kick_sample(rng: np.random.Generator) -> dict:
    p = _common(rng, 1 / 16, 1 / 9, 40, 95)
    p["side"] = float(rng.choice([-1.0, 1.0]))
    p["style"] = int(rng.integers(0, 2))  # 0 front kick, 1 side kick
    p["height"] = float(rng.uniform(60, 95))
    return p


def _kick(t: float, p: dict) -> Pose3D:
    k = math.sin(math.pi * ((p["speed"] * t + p["phase"]) % 1.0)) ** 2  # 0 -> 1 (extended) -> 0
    bend = 70 * math.sin(math.pi * k)  # chambered knee half-way
    h = p["height"] * k
    kicking: Limb = (3, h, 2, h - bend) if p["style"] == 0 else (3 + h, 20 * k, 2 + h, 20 * k - bend)
    support: Limb = (4, 8 * k, 3, -6 * k)
    leg_l, leg_r = (kicking, support) if p["side"] > 0 else (support, kicking)
    guard: Limb = (18, 35, 10, 125)
    roll = -18 * k * p["side"] if p["style"] == 1 else 0.0
    return Pose3D(yaw=p["yaw"], lean=-12 * k, roll=roll, arm_l=guard, arm_r=guard, leg_l=leg_l, leg_r=leg_r)


def _dance_sample(rng: np.random.Generator) -> dict:
    p = _common(rng, 1 / 16, 1 / 8, 0, 30)
    p["style"] = int(rng.integers(0, 2))
    return p


def _dance(t: float, p: dict) -> Pose3D:
    ph = 2 * math.pi * (p["speed"] * t + p["phase"])
    s, c = math.sin(ph), math.cos(ph)
    bounce = 0.5 * (1 + math.sin(2 * ph))
    leg_l: Limb = (6 + 6 * max(0.0, s), 18 * bounce, 4, -18 * bounce)
    leg_r: Limb = (6 + 6 * max(0.0, -s), 18 * bounce, 4, -18 * bounce)
    if p["style"] == 0:  # arms alternating up and down
        arm_l: Limb = (95 + 60 * s, 10, 120 + 50 * s, 10 + 40 * c)
        arm_r: Limb = (95 - 60 * s, 10, 120 - 50 * s, 10 - 40 * c)
    else:  # disco point: one arm up to the side, the other across the hip
        arm_l = (100 + 50 * s, 15, 150 + 30 * s, 15)
        arm_r = (30 - 20 * s, 30, -20 - 30 * s, 40)
    return Pose3D(yaw=p["yaw"] + 20 * c, roll=8 * s, x=0.04 * s, arm_l=arm_l, arm_r=arm_r, leg_l=leg_l, leg_r=leg_r)


@dataclass(frozen=True)
class Motion:
    """A named motion: ``sample(rng)`` draws its parameters, ``pose(t, params)`` gives the angles."""

    name: str
    sample: Callable[[np.random.Generator], dict]
    pose: Callable[[float, dict], Pose3D]


MOTION_LIBRARY: dict[str, Motion] = {
    m.name: m
    for m in (
        Motion("walk", _walk_sample, _walk),
        Motion("wave", _wave_sample, _wave),
        Motion("squat", _squat_sample, _squat),
        Motion("jump", _jump_sample, _jump),
        Motion("turn", _turn_sample, _turn),
        Motion("kick", _kick_sample, _kick),
        Motion("dance", _dance_sample, _dance),
    )
}
assert tuple(MOTION_LIBRARY) == MOTIONS


@dataclass
class MotionClip:
    """A motion with fixed parameters, placed in a ``size`` x ``size`` image.

    ``scale`` is pixels per body unit; ``origin`` is the image position (px) of the world origin
    (the ground under the figure's start). Use :meth:`keypoints` for one time or :meth:`sequence`.
    """

    motion: str
    params: dict
    shape: BodyShape
    size: int
    scale: float
    origin: tuple[float, float]

    def world(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Joints (17, 3) in body units (X right, Y down, Z towards camera) and visibility (17,)."""
        return skeleton_3d(MOTION_LIBRARY[self.motion].pose(float(t), self.params), self.shape)

    def keypoints(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (17, 3) [x px, y px, visibility] and depth (17,) in px (larger = nearer)."""
        joints, visible = self.world(t)
        xy = joints[:, :2] * self.scale + np.asarray(self.origin)  # (17, 2)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < self.size) & (xy[:, 1] >= 0) & (xy[:, 1] < self.size)
        kp = np.concatenate([xy, (visible * inside)[:, None]], axis=1).astype(np.float32)
        return kp, (joints[:, 2] * self.scale).astype(np.float32)

    def sequence(self, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (F, 17, 3) and depth (F, 17) for frames 0 .. num_frames-1."""
        pairs = [self.keypoints(t) for t in range(num_frames)]
        return np.stack([k for k, _ in pairs]), np.stack([d for _, d in pairs])


def sample_clip(
    motion: str,
    shape: BodyShape,
    size: int,
    num_frames: int,
    rng: np.random.Generator,
    height_range: tuple[float, float] = (0.62, 0.9),
    margin: float = 0.03,
) -> MotionClip:
    """Draw a motion's parameters and a random scale/position that keeps the whole clip in frame.

    Args:
        motion: one of :data:`MOTIONS`.
        shape: the body's bone lengths.
        size: square image size in pixels.
        num_frames: frames the clip must fit for (t = 0 .. num_frames-1).
        rng: numpy generator; the only source of randomness.
        height_range: standing height as a fraction of ``size`` (before shrinking to fit).
        margin: free border, as a fraction of ``size``.
    """
    if motion not in MOTION_LIBRARY:
        raise ValueError(f"unknown motion {motion!r}; choose one of {MOTIONS}.")
    if num_frames < 1 or size < 16:
        raise ValueError(f"need num_frames >= 1 and size >= 16; got {num_frames}, {size}.")
    params = MOTION_LIBRARY[motion].sample(rng)
    world = np.stack([skeleton_3d(MOTION_LIBRARY[motion].pose(t, params), shape)[0] for t in range(num_frames)])
    pad = shape.head * 1.35 + 0.05 * shape.girth  # hair, limb thickness, shoes
    x0, x1 = world[..., 0].min() - pad, world[..., 0].max() + pad
    y0, y1 = world[..., 1].min() - pad, 0.01
    usable = size * (1 - 2 * margin)
    scale = min(rng.uniform(*height_range) * size, usable / (x1 - x0), usable / (y1 - y0))
    m = size * margin
    ox = rng.uniform(m - scale * x0, max(m - scale * x0, size - m - scale * x1))
    oy = rng.uniform(m - scale * y0, max(m - scale * y0, size - m - scale * y1))
    return MotionClip(motion, params, shape, size, float(scale), (float(ox), float(oy)))


def with_params(clip: MotionClip, **params: float) -> MotionClip:
    """A copy of ``clip`` with some motion parameters replaced (for previews and tests)."""
    return replace(clip, params={**clip.params, **params})
