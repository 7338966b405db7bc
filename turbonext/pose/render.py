"""The "rainbow" COCO-17 skeleton renderer: the pose maps the model is conditioned on.

Rules (see docs/pose_palette.md for the table and a picture):

* pure black background, RGB;
* 12 limbs, each in its own fully saturated colour; the person's right side is drawn in warm
  colours (red, orange, rose, magenta, violet) and the left side in cool ones (green, spring green,
  azure, cyan, chartreuse), so every left limb differs from its right twin by at least 120 degrees
  of hue and front/back is never ambiguous;
* the face is exactly five dots (nose, eyes, ears) in five distinct colours, with no lines between
  face keypoints;
* a keypoint whose confidence is under ``threshold`` is not drawn, nor is any limb touching it;
* every person is drawn; the line width scales with the image size.

Drawing uses PIL without anti-aliasing so the limb colours in the map are exact.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw

from turbonext.pose.keypoints import FACE_KEYPOINTS, KEYPOINT_INDEX, Person, as_people


Color = tuple[int, int, int]

#: (name, start keypoint, end keypoint, RGB colour), in drawing order (torso, legs, arms).
LIMBS: tuple[tuple[str, str, str, Color], ...] = (
    ("shoulders", "left_shoulder", "right_shoulder", (255, 255, 0)),  # yellow
    ("hips", "left_hip", "right_hip", (0, 0, 255)),  # blue
    ("left_torso", "left_shoulder", "left_hip", (0, 128, 255)),  # azure
    ("right_torso", "right_shoulder", "right_hip", (255, 0, 128)),  # rose
    ("left_thigh", "left_hip", "left_knee", (0, 255, 255)),  # cyan
    ("left_shin", "left_knee", "left_ankle", (128, 255, 0)),  # chartreuse
    ("right_thigh", "right_hip", "right_knee", (255, 0, 255)),  # magenta
    ("right_shin", "right_knee", "right_ankle", (128, 0, 255)),  # violet
    ("left_upper_arm", "left_shoulder", "left_elbow", (0, 255, 0)),  # green
    ("left_forearm", "left_elbow", "left_wrist", (0, 255, 128)),  # spring green
    ("right_upper_arm", "right_shoulder", "right_elbow", (255, 0, 0)),  # red
    ("right_forearm", "right_elbow", "right_wrist", (255, 128, 0)),  # orange
)
LIMB_COLORS: dict[str, Color] = {name: color for name, _, _, color in LIMBS}
#: Left limb -> its right twin.
LIMB_TWINS: dict[str, str] = {
    name: "right_" + name[len("left_"):] for name, *_ in LIMBS if name.startswith("left_")
}

#: Colours of the five face dots (all distinct; left cool, right warm, nose white).
FACE_COLORS: dict[str, Color] = {
    "nose": (255, 255, 255),
    "left_eye": (0, 255, 0),
    "right_eye": (255, 0, 0),
    "left_ear": (0, 128, 255),
    "right_ear": (255, 128, 0),
}

#: Body joints are drawn as dots in the colour of the limb that leaves them towards the hand/foot.
JOINT_COLORS: dict[str, Color] = {
    "left_shoulder": LIMB_COLORS["left_upper_arm"],
    "right_shoulder": LIMB_COLORS["right_upper_arm"],
    "left_elbow": LIMB_COLORS["left_forearm"],
    "right_elbow": LIMB_COLORS["right_forearm"],
    "left_wrist": LIMB_COLORS["left_forearm"],
    "right_wrist": LIMB_COLORS["right_forearm"],
    "left_hip": LIMB_COLORS["left_thigh"],
    "right_hip": LIMB_COLORS["right_thigh"],
    "left_knee": LIMB_COLORS["left_shin"],
    "right_knee": LIMB_COLORS["right_shin"],
    "left_ankle": LIMB_COLORS["left_shin"],
    "right_ankle": LIMB_COLORS["right_shin"],
}

_LIMB_INDEX = tuple((KEYPOINT_INDEX[a], KEYPOINT_INDEX[b], color) for _, a, b, color in LIMBS)
_JOINT_INDEX = tuple((KEYPOINT_INDEX[name], color) for name, color in JOINT_COLORS.items())
_FACE_INDEX = tuple((KEYPOINT_INDEX[name], color) for name, color in FACE_COLORS.items())
assert sorted(i for i, _ in _FACE_INDEX) == list(FACE_KEYPOINTS)


def default_line_width(size: tuple[int, int]) -> int:
    """Limb width in pixels for an image of ``size`` (width, height): 5 px at 512, at least 1."""
    return max(1, int(round(min(size) / 100)))


def _parse_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"size must be (width, height) with positive integers, or one int; got {size!r}.")
    return int(size[0]), int(size[1])


def render_pose(
    people: Person | Iterable[Person] | np.ndarray,
    size: int | tuple[int, int] = (512, 512),
    threshold: float = 0.3,
    line_width: int | None = None,
    source_size: tuple[int, int] | None = None,
    draw_joints: bool = True,
) -> Image.Image:
    """Draw the rainbow COCO-17 skeletons of ``people`` on black.

    Args:
        people: a list of :class:`~turbonext.pose.Person`, a numpy array (N, 17, 3) of
            x px, y px, confidence, or a single person (a ``Person`` or a (17, 3) array).
        size: output (width, height) in pixels, or one int for a square.
        threshold: keypoints with confidence below this are not drawn, nor limbs touching them.
        line_width: limb width in pixels; default scales with the image (5 px at 512).
        source_size: (width, height) of the image the keypoints were detected in, when it
            differs from ``size``; keypoints are then scaled to the output.
        draw_joints: also draw a dot on every visible body joint (shoulders to ankles).

    Returns:
        An RGB ``PIL.Image.Image`` of ``size``.
    """
    width, height = _parse_size(size)
    people_list = as_people(people)
    lw = default_line_width((width, height)) if line_width is None else int(line_width)
    if lw < 1:
        raise ValueError(f"line_width must be >= 1 pixel; got {line_width}.")
    scale = (1.0, 1.0)
    if source_size is not None:
        sw, sh = _parse_size(source_size)
        scale = (width / sw, height / sh)

    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    joint_r = max(1.0, lw * 0.8)
    face_r = max(1.0, lw * 1.0)

    for person in people_list:
        kp = person.keypoints.astype(np.float64)
        xy = kp[:, :2] * np.asarray(scale)
        ok = (kp[:, 2] >= threshold) & np.isfinite(xy).all(axis=1)
        for a, b, color in _LIMB_INDEX:
            if ok[a] and ok[b]:
                draw.line([tuple(xy[a]), tuple(xy[b])], fill=color, width=lw)
        if draw_joints:
            for i, color in _JOINT_INDEX:
                if ok[i]:
                    _dot(draw, xy[i], joint_r, color)
        for i, color in _FACE_INDEX:
            if ok[i]:
                _dot(draw, xy[i], face_r, color)
    return image


def _dot(draw: ImageDraw.ImageDraw, center: np.ndarray, radius: float, color: Color) -> None:
    x, y = float(center[0]), float(center[1])
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)


def palette_rows() -> list[tuple[str, str, Color]]:
    """(part, kind, colour) rows of the whole palette, for documentation and tests."""
    rows: list[tuple[str, str, Color]] = [(name, "limb", color) for name, *_, color in LIMBS]
    rows += [(name, "face dot", color) for name, color in FACE_COLORS.items()]
    return rows
