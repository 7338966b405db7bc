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

``render_pose(..., style="openpose")`` draws the DWPose / ControlNet OpenPose-18 convention instead, the
maps public pose-transfer checkpoints (Moore-AnimateAnyone, MusePose, RAIN) were trained on, and
:func:`render_face_landmarks` draws RAIN's face-landmark condition; see docs/pose_styles.md. Those maps
are rasterised with the integer rules of OpenCV's drawing functions (``cv2.ellipse2Poly``,
``cv2.fillConvexPoly``, ``cv2.circle``, ``cv2.line`` with 8-connected lines), re-implemented here in
numpy, so they are pixel-identical to what those projects drew without importing cv2.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw

from turbonext.pose.keypoints import (
    FACE_KEYPOINTS,
    KEYPOINT_INDEX,
    NUM_FACE_LANDMARKS,
    OPENPOSE_KEYPOINTS,
    Person,
    as_people,
    coco_to_openpose,
)


Color = tuple[int, int, int]

#: The pose-map conventions ``render_pose(style=...)`` draws: turbonext's own rainbow COCO-17 map, the
#: DWPose / ControlNet OpenPose-18 map (Moore-AnimateAnyone, RAIN) and MusePose's variant of it.
POSE_STYLES: tuple[str, ...] = ("turbonext", "openpose", "musepose")
#: The face-landmark conventions :func:`render_face_landmarks` draws.
FACE_STYLES: tuple[str, ...] = ("rain",)

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


def _source_scale(size: tuple[int, int], source_size) -> tuple[float, float]:
    """(x, y) factors from ``source_size`` (where the points were found) to the output ``size``; 1 without one."""
    if source_size is None:
        return (1.0, 1.0)
    sw, sh = _parse_size(source_size)
    return (size[0] / sw, size[1] / sh)


def _parse_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2 or not all(
            isinstance(v, (int, np.integer, float, np.floating)) and not isinstance(v, bool) and float(v).is_integer()
            for v in size):
        raise ValueError(f"size must be (width, height) with positive integers, or one int; got {size!r}.")
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"size must be (width, height) with positive integers, or one int; got {size!r}.")
    return int(size[0]), int(size[1])


def _check_style(style: str, styles: tuple[str, ...], what: str) -> str:
    if not isinstance(style, str) or style not in styles:
        raise ValueError(f"unknown {what} style {style!r}; expected one of: {', '.join(map(repr, styles))}.")
    return style


def render_pose(
    people: Person | Iterable[Person] | np.ndarray,
    size: int | tuple[int, int] = (512, 512),
    threshold: float = 0.3,
    line_width: int | None = None,
    source_size: tuple[int, int] | None = None,
    draw_joints: bool = True,
    style: str = "turbonext",
) -> Image.Image:
    """Draw the skeletons of ``people`` on black, in one of the :data:`POSE_STYLES` conventions.

    Args:
        people: a list of :class:`~turbonext.pose.Person`, a numpy array (N, 17, 3) of
            x px, y px, confidence, or a single person (a ``Person`` or a (17, 3) array).
        size: output (width, height) in pixels, or one int for a square.
        threshold: keypoints with confidence below this are not drawn, nor limbs touching them
            (``"openpose"``/``"musepose"``: a body keypoint needs a confidence above it, a hand or face
            point at least it, as in DWPose).
        line_width: ``"turbonext"``: limb width in pixels, default scaling with the image (5 px at 512).
            ``"openpose"``/``"musepose"``: the limb ellipses' half-width (DWPose's ``stickwidth``),
            default 4 px (``"musepose"``: 1-8 px by limb length), at every image size; hand lines keep
            the convention's width.
        source_size: (width, height) of the image the keypoints were detected in, when it
            differs from ``size``; keypoints are then scaled to the output.
        draw_joints: also draw the joint dots (``"turbonext"``: shoulders to ankles; ``"openpose"``: the
            18 keypoint circles).
        style: ``"turbonext"`` (default): the rainbow COCO-17 map of docs/pose_palette.md.
            ``"openpose"``: the DWPose / ControlNet OpenPose-18 map Moore-AnimateAnyone and RAIN were
            trained on: 17 limbs as filled ellipses at 60% brightness, 18 keypoint circles of radius 4,
            and the person's hands (coloured edges, blue dots) and face (white dots) when given.
            ``"musepose"``: MusePose's variant: the same map with red and blue swapped (MusePose draws
            in BGR and converts), limb and hand-line widths from the limb's length, hand dots of radius 3.
            See docs/pose_styles.md.

    Returns:
        An RGB ``PIL.Image.Image`` of ``size``.
    """
    _check_style(style, POSE_STYLES, "pose")
    width, height = _parse_size(size)
    people_list = as_people(people)
    scale = _source_scale((width, height), source_size)
    if style != "turbonext":
        stick = None if line_width is None else int(line_width)
        if stick is not None and stick < 0:
            raise ValueError(f"line_width must be >= 0 pixels; got {line_width}.")
        return _render_openpose(people_list, width, height, threshold, stick, scale, draw_joints, style)
    lw = default_line_width((width, height)) if line_width is None else int(line_width)
    if lw < 1:
        raise ValueError(f"line_width must be >= 1 pixel; got {line_width}.")

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


# ---------------------------------------------------------------------------------------------------
# The OpenPose-18 convention (DWPose, as ControlNet, Moore-AnimateAnyone, MusePose and RAIN vendor it)
# ---------------------------------------------------------------------------------------------------

#: The 19 OpenPose limbs as (start, end) indices into :data:`OPENPOSE_KEYPOINTS`; DWPose draws only the
#: first 17 (:data:`OPENPOSE_DRAWN_LIMBS`): the two shoulder-ear limbs are listed but never drawn.
OPENPOSE_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)
OPENPOSE_DRAWN_LIMBS = 17
#: The 18 colours: limb ``i`` and keypoint ``i`` are drawn in ``OPENPOSE_COLORS[i]`` (limbs at 60%).
OPENPOSE_COLORS: tuple[Color, ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
#: Limbs are scaled by this before the keypoint circles are drawn on top (``(canvas * 0.6).astype(uint8)``).
OPENPOSE_LIMB_BRIGHTNESS = 0.6
#: The 20 hand edges (21 keypoints: wrist 0, then four per finger).
HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    pair for finger in range(5) for pair in ((0 if k == 0 else 4 * finger + k, 4 * finger + k + 1) for k in range(4))
)


def _hsv_edge_color(index: int, count: int) -> Color:
    """Hand edge ``index``: hue index/count at full saturation and value, as matplotlib's hsv_to_rgb
    computes it, times 255 and rounded half to even (what cv2 does with a float colour)."""
    h6 = (index / float(count)) * 6.0
    i = int(h6)
    f = h6 - i
    v, p, q, t = 1.0, 0.0, 1.0 - 1.0 * f, 1.0 - 1.0 * (1.0 - f)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return tuple(int(round(c * 255)) for c in rgb)  # type: ignore[return-value]


#: Colour of each hand edge (hue going round the circle from red).
HAND_EDGE_COLORS: tuple[Color, ...] = tuple(_hsv_edge_color(i, len(HAND_EDGES)) for i in range(len(HAND_EDGES)))
#: Hand keypoint dots (blue in the output image), face landmark dots (white).
HAND_DOT_COLOR: Color = (0, 0, 255)
FACE_DOT_COLOR: Color = (255, 255, 255)

# Sizes in pixels, as the convention draws them at any image size (see docs/pose_styles.md).
_OPENPOSE_STICK_WIDTH = 4  # the limb ellipse's half-width (minor semi-axis)
_OPENPOSE_JOINT_RADIUS = 4
_OPENPOSE_HAND_LINE = 2
_OPENPOSE_HAND_DOT = 4
_MUSEPOSE_HAND_DOT = 3
_FACE_DOT_RADIUS = 3
_EPS = 0.01  # DWPose draws a hand / face point only when int(x) and int(y) are > 0.01 (i.e. >= 1)

#: RAIN-v0.1's face condition (``patterns`` in RAIN's src/morpher.py): each dot sits at the mean of a group
#: of 68-point landmark indices, in an RGB colour: jaw line cyan, brows violet and rose, mouth blue, nose
#: magenta, eyes pink and lilac.
RAIN_FACE_PATTERNS: tuple[tuple[tuple[int, ...], Color], ...] = (
    ((1, 2), (0, 255, 255)), ((4,), (0, 255, 255)), ((8,), (0, 255, 255)), ((12,), (0, 255, 255)),
    ((15, 14), (0, 255, 255)),
    ((17,), (128, 0, 255)), ((18, 19), (128, 0, 255)), ((20,), (128, 0, 255)),
    ((23,), (255, 0, 128)), ((24, 25), (255, 0, 128)), ((26,), (255, 0, 128)),
    ((60,), (0, 0, 255)), ((62,), (0, 0, 255)), ((64,), (0, 0, 255)), ((66,), (0, 0, 255)),
    ((33, 30), (255, 0, 255)),
    ((36, 37), (255, 128, 128)), ((37, 38), (255, 128, 128)), ((38, 39), (255, 128, 128)),
    ((40, 39), (255, 128, 128)), ((41,), (255, 128, 128)),
    ((42, 43), (128, 128, 255)), ((43, 44), (128, 128, 255)), ((44, 45), (128, 128, 255)),
    ((46,), (128, 128, 255)), ((47, 42), (128, 128, 255)),
)

assert len(OPENPOSE_COLORS) == len(OPENPOSE_KEYPOINTS) == 18 and len(HAND_EDGES) == 20


def _musepose_width(length: float) -> int:
    """MusePose's limb / hand-line width for a segment of ``length`` pixels (its ``smart_width``)."""
    for limit, width in ((5, 1), (10, 2), (20, 3), (40, 4), (80, 5), (160, 6), (320, 7)):
        if length < limit:
            return width
    return 8


# ------------------------------------------------------------------ OpenCV-compatible rasterisation
# Integer rules of OpenCV's drawing module (imgproc/drawing.cpp), so that a map drawn here has the same
# pixels as one DWPose drew with cv2: fixed-point coordinates with 16 fractional bits, rounding half to
# even where OpenCV calls cvRound, C integer division (truncating towards zero) where it divides.

_XY_SHIFT = 16
_XY_ONE = 1 << _XY_SHIFT
_HALF = _XY_ONE >> 1


def _cdiv(a: int, b: int) -> int:
    """C integer division: the quotient truncated towards zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _cv_round(value: float) -> int:
    return int(round(value))  # Python rounds half to even, like cvRound


# OpenCV's table of sines at whole degrees 0..450, stored as 7-decimal float32 literals.
_SIN_TABLE = [float(np.float32(round(math.sin(math.radians(d)), 7))) for d in range(451)]


def _hline(img: np.ndarray, y: int, x1: int, x2: int, color: np.ndarray) -> None:
    h, w = img.shape[:2]
    if 0 <= y < h:
        x1, x2 = max(x1, 0), min(x2, w - 1)
        if x1 <= x2:
            img[y, x1:x2 + 1] = color


def _clip_segment(w: int, h: int, x1: int, y1: int, x2: int, y2: int) -> tuple[int, int, int, int] | None:
    """The segment clipped to [0, w-1] x [0, h-1] the way cv::clipLine does it; None if it misses."""
    right, bottom = w - 1, h - 1

    def code(x: int, y: int) -> int:
        return (x < 0) + (x > right) * 2 + (y < 0) * 4 + (y > bottom) * 8

    c1, c2 = code(x1, y1), code(x2, y2)
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = 0 if c1 < 8 else bottom
            x1 += int(float(a - y1) * (x2 - x1) / (y2 - y1))
            y1 = a
            c1 = (x1 < 0) + (x1 > right) * 2
        if c2 & 12:
            a = 0 if c2 < 8 else bottom
            x2 += int(float(a - y2) * (x2 - x1) / (y2 - y1))
            y2 = a
            c2 = (x2 < 0) + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = 0 if c1 == 1 else right
                y1 += int(float(a - x1) * (y2 - y1) / (x2 - x1))
                x1, c1 = a, 0
            if c2:
                a = 0 if c2 == 1 else right
                y2 += int(float(a - x2) * (y2 - y1) / (x2 - x1))
                x2, c2 = a, 0
    if c1 | c2:
        return None
    return x1, y1, x2, y2


def _line8(img: np.ndarray, x1: int, y1: int, x2: int, y2: int, color: np.ndarray) -> None:
    """A 1-pixel, 8-connected line between integer points (Bresenham, walked from the left end)."""
    h, w = img.shape[:2]
    if not (0 <= x1 < w and 0 <= x2 < w and 0 <= y1 < h and 0 <= y2 < h):
        clipped = _clip_segment(w, h, x1, y1, x2, y2)
        if clipped is None:
            return
        x1, y1, x2, y2 = clipped
    if x2 < x1:
        x1, y1, x2, y2 = x2, y2, x1, y1
    dx, dy = x2 - x1, y2 - y1
    sy = -1 if dy < 0 else 1
    dy = abs(dy)
    if dy > dx:  # steps along y, sometimes one to the right
        major, minor, n_major, n_minor = (0, sy), (1, 0), dy, dx
    else:  # steps along x, sometimes one up or down
        major, minor, n_major, n_minor = (1, 0), (0, sy), dx, dy
    err = n_major - 2 * n_minor
    x, y = x1, y1
    for _ in range(n_major + 1):
        img[y, x] = color
        if err < 0:
            x, y, err = x + minor[0], y + minor[1], err + 2 * n_major
        err -= 2 * n_minor
        x, y = x + major[0], y + major[1]


def _line_fixed(img: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color: np.ndarray) -> None:
    """A 1-pixel line between fixed-point points (16 fractional bits): the outline of thick lines."""
    h, w = img.shape[:2]
    clipped = _clip_segment(w << _XY_SHIFT, h << _XY_SHIFT, p1[0], p1[1], p2[0], p2[1])
    if clipped is None:
        return
    x1, y1, x2, y2 = clipped
    dx, dy = x2 - x1, y2 - y1
    if abs(dx) > abs(dy):
        if dx < 0:  # walk left to right
            x1, y1, x2, y2, dy = x2, y2, x1, y1, -dy
        step = _cdiv(dy << _XY_SHIFT, abs(dx) | 1)
        count = (x2 - x1) >> _XY_SHIFT
    else:
        if dy < 0:  # walk top to bottom
            x1, y1, x2, y2, dx = x2, y2, x1, y1, -dx
        step = _cdiv(dx << _XY_SHIFT, abs(dy) | 1)
        count = (y2 - y1) >> _XY_SHIFT
    x1, y1 = x1 + _HALF, y1 + _HALF

    def put(x: int, y: int) -> None:
        if 0 <= x < w and 0 <= y < h:
            img[y, x] = color

    put((x2 + _HALF) >> _XY_SHIFT, (y2 + _HALF) >> _XY_SHIFT)
    if abs(dx) > abs(dy):
        x = x1 >> _XY_SHIFT
        for _ in range(count + 1):
            put(x, y1 >> _XY_SHIFT)
            x, y1 = x + 1, y1 + step
    else:
        y = y1 >> _XY_SHIFT
        for _ in range(count + 1):
            put(x1 >> _XY_SHIFT, y)
            x1, y = x1 + step, y + 1


def _fill_convex(img: np.ndarray, pts: list[tuple[int, int]], color: np.ndarray, shift: int = 0) -> None:
    """Fill a convex polygon (cv2.fillConvexPoly, 8-connected): its outline, then scanlines between the
    left and right chains of edges walked down from the top vertex."""
    h, w = img.shape[:2]
    n = len(pts)
    if n == 0:
        return
    up = _XY_SHIFT - shift
    # The outline.
    px, py = pts[-1][0] << up, pts[-1][1] << up
    for x, y in pts:
        qx, qy = x << up, y << up
        if shift == 0:
            _line8(img, px >> _XY_SHIFT, py >> _XY_SHIFT, qx >> _XY_SHIFT, qy >> _XY_SHIFT, color)
        else:
            _line_fixed(img, (px, py), (qx, qy), color)
        px, py = qx, qy
    # The interior.
    delta = (1 << shift) >> 1
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    imin = min(range(n), key=lambda i: (ys[i], i))
    xmin, xmax = (min(xs) + delta) >> shift, (max(xs) + delta) >> shift
    ymin, ymax = (ys[imin] + delta) >> shift, (max(ys) + delta) >> shift
    if n < 3 or xmax < 0 or ymax < 0 or xmin >= w or ymin >= h:
        return
    ymax = min(ymax, h - 1)
    # Two chains from the top vertex: one walks the vertices forwards, the other backwards.
    chain_idx, chain_step = [imin, imin], [1, n - 1]
    chain_x, chain_dx, chain_end = [-_XY_ONE, -_XY_ONE], [0, 0], [ymin, ymin]
    edges_left = n
    y = ymin
    while True:
        for c in range(2):
            if y >= chain_end[c]:
                idx0 = chain_idx[c]
                idx = (idx0 + chain_step[c]) % n
                while True:
                    edges_left -= 1
                    if edges_left < 0:
                        break
                    ty = (ys[idx] + delta) >> shift
                    if ty > y:
                        xs0, xe = xs[idx0] << up, xs[idx] << up
                        chain_end[c] = ty
                        chain_dx[c] = _cdiv((xe - xs0) * 2 + (ty - y), 2 * (ty - y))
                        chain_x[c] = xs0
                        chain_idx[c] = idx
                        break
                    idx0 = idx
                    idx = (idx + chain_step[c]) % n
        if edges_left < 0:
            break
        if y < 0:  # rows above the image draw nothing: jump to the next edge change or to row 0
            skip = min(chain_end[0], chain_end[1], 0) - y
            if skip > 1:
                chain_x[0] += chain_dx[0] * (skip - 1)
                chain_x[1] += chain_dx[1] * (skip - 1)
                y += skip - 1
        if y >= 0:
            left, right = sorted(chain_x)
            x1, x2 = (left + _HALF) >> _XY_SHIFT, (right + _HALF) >> _XY_SHIFT
            if x2 >= 0 and x1 < w:
                _hline(img, y, x1, x2, color)
        chain_x[0] += chain_dx[0]
        chain_x[1] += chain_dx[1]
        y += 1
        if y > ymax:
            break


def _ellipse_polygon(cx: int, cy: int, a: int, b: int, angle: int) -> list[tuple[int, int]]:
    """The closed ellipse as a polygon with a vertex every degree (cv2.ellipse2Poly(..., 0, 360, 1))."""
    angle = angle % 360 if angle < 0 or angle > 360 else angle
    cos_a, sin_a = _SIN_TABLE[450 - angle], _SIN_TABLE[angle]
    out: list[tuple[int, int]] = []
    for d in range(361):
        x, y = a * _SIN_TABLE[450 - d], b * _SIN_TABLE[d]
        pt = (_cv_round(cx + x * cos_a - y * sin_a), _cv_round(cy + x * sin_a + y * cos_a))
        if not out or pt != out[-1]:
            out.append(pt)
    if len(out) == 1:
        out = [(cx, cy), (cx, cy)]
    return out


def _disc(img: np.ndarray, cx: int, cy: int, radius: int, color: np.ndarray) -> None:
    """A filled circle (cv2.circle with thickness -1): midpoint-circle spans."""
    err, dx, dy, plus, minus = 0, radius, 0, 1, (radius << 1) - 1
    while dx >= dy:
        _hline(img, cy - dy, cx - dx, cx + dx, color)
        _hline(img, cy + dy, cx - dx, cx + dx, color)
        _hline(img, cy - dx, cx - dy, cx + dy, color)
        _hline(img, cy + dx, cx - dy, cx + dy, color)
        dy += 1
        err += plus
        plus += 2
        if err > 0:
            err -= minus
            dx -= 1
            minus -= 2


def _thick_line(img: np.ndarray, x1: int, y1: int, x2: int, y2: int, thickness: int, color: np.ndarray) -> None:
    """cv2.line(img, p1, p2, color, thickness) with LINE_8: a 4-sided polygon plus round caps."""
    if thickness <= 1:
        _line8(img, x1, y1, x2, y2, color)
        return
    p0x, p0y, p1x, p1y = x1 << _XY_SHIFT, y1 << _XY_SHIFT, x2 << _XY_SHIFT, y2 << _XY_SHIFT
    dx, dy = (p0x - p1x) / _XY_ONE, (p1y - p0y) / _XY_ONE
    r = dx * dx + dy * dy
    half = thickness << (_XY_SHIFT - 1)
    if abs(r) > np.finfo(np.float64).eps:
        r = (half + (thickness & 1) * _XY_ONE * 0.5) / math.sqrt(r)
        ox, oy = _cv_round(dy * r), _cv_round(dx * r)
        quad = [(p0x + ox, p0y + oy), (p0x - ox, p0y - oy), (p1x - ox, p1y - oy), (p1x + ox, p1y + oy)]
        _fill_convex(img, quad, color, shift=_XY_SHIFT)
    cap = (half + _HALF) >> _XY_SHIFT
    _disc(img, x1, y1, cap, color)
    _disc(img, x2, y2, cap, color)


# ------------------------------------------------------------------ the OpenPose-style renderers


def _normalised(points: np.ndarray, scale: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """x / width, y / height of ``points`` (..., 3) scaled to the output ``size``, in float32: DWPose keeps
    its coordinates so and multiplies them back by the canvas size when it draws."""
    xy = points[..., :2].astype(np.float32)
    if scale != (1.0, 1.0):
        xy = (xy.astype(np.float64) * np.asarray(scale)).astype(np.float32)
    return xy / np.asarray(size, np.float32)


def _pixel(norm: np.floating, extent: int) -> int | None:
    """``int(x * W)`` for one float32 coordinate, the product in float64 (numpy 1.x, which DWPose's maps
    were made with, promotes a float32 scalar times a Python int to float64); None if not finite."""
    value = float(norm) * extent
    return int(value) if math.isfinite(value) else None


def _draw_points(img: np.ndarray, points: np.ndarray, scale: tuple[float, float], threshold: float,
                 radius: int, color: np.ndarray) -> None:
    """Dots of hand / face points: confidence >= threshold and int(x), int(y) >= 1 (DWPose's rule)."""
    h, w = img.shape[:2]
    norm = _normalised(points, scale, (w, h))
    for (nx, ny), conf in zip(norm, points[..., 2]):
        ix, iy = _pixel(nx, w), _pixel(ny, h)
        if conf >= threshold and ix is not None and iy is not None and ix > _EPS and iy > _EPS:
            _disc(img, ix, iy, radius, color)


def _render_openpose(
    people: list[Person],
    width: int,
    height: int,
    threshold: float,
    stick: int | None,
    scale: tuple[float, float],
    draw_joints: bool,
    style: str,
) -> Image.Image:
    musepose = style == "musepose"
    canvas = np.zeros((height, width, 3), np.uint8)
    bodies = []
    wh = np.asarray([width, height], np.float32)
    for person in people:
        kp = coco_to_openpose(person.keypoints, threshold)
        norm = _normalised(kp, scale, (width, height))
        with np.errstate(over="ignore", invalid="ignore"):
            xy = norm * wh
            # a point more than a million pixels away cannot be drawn (and overflows float32 limb arithmetic)
            ok = (kp[:, 2] > threshold) & np.isfinite(norm).all(axis=1) & (np.abs(xy) < 1e6).all(axis=1)
        bodies.append((norm, xy, ok))  # the limbs' coordinates stay float32

    # Limbs: filled ellipses along each limb, limb by limb over all people, later ones on top.
    for i, (a, b) in enumerate(OPENPOSE_LIMBS[:OPENPOSE_DRAWN_LIMBS]):
        color = np.asarray(OPENPOSE_COLORS[i], np.uint8)
        for _, xy, ok in bodies:
            if not (ok[a] and ok[b]):
                continue
            mx, my = np.mean(xy[[a, b], 0]), np.mean(xy[[a, b], 1])  # float32
            ddx, ddy = float(xy[a, 0] - xy[b, 0]), float(xy[a, 1] - xy[b, 1])  # float32 differences
            length = (ddx**2 + ddy**2) ** 0.5  # squared and summed in float64, as numpy 1.x did
            angle = int(math.degrees(math.atan2(ddy, ddx)))
            half_width = stick if stick is not None else (_musepose_width(length) if musepose else _OPENPOSE_STICK_WIDTH)
            polygon = _ellipse_polygon(int(mx), int(my), int(length / 2), half_width, angle)
            _fill_convex(canvas, polygon, color)
    canvas = (canvas * OPENPOSE_LIMB_BRIGHTNESS).astype(np.uint8)

    # Keypoints: full-colour circles on top of the dimmed limbs.
    if draw_joints:
        for i in range(len(OPENPOSE_KEYPOINTS)):
            color = np.asarray(OPENPOSE_COLORS[i], np.uint8)
            for norm, _, ok in bodies:
                if ok[i]:
                    _disc(canvas, _pixel(norm[i, 0], width), _pixel(norm[i, 1], height), _OPENPOSE_JOINT_RADIUS,
                          color)

    # Hands (every person's left hand, then every right hand, as DWPose stacks them): coloured edges,
    # then blue dots; then faces: white dots.
    hand_dot = np.asarray(HAND_DOT_COLOR, np.uint8)
    for side in (0, 1):
        for person in people:
            if person.hands is None:
                continue
            hand = person.hands[side]
            norm = _normalised(hand, scale, (width, height))
            visible = hand[:, 2] >= threshold
            for (a, b), color in zip(HAND_EDGES, HAND_EDGE_COLORS):
                if not (visible[a] and visible[b]):
                    continue
                ends = [_pixel(norm[a, 0], width), _pixel(norm[a, 1], height),
                        _pixel(norm[b, 0], width), _pixel(norm[b, 1], height)]
                if any(v is None or v <= _EPS for v in ends):
                    continue
                x1, y1, x2, y2 = ends  # type: ignore[misc]
                thickness = _OPENPOSE_HAND_LINE
                if musepose:
                    thickness = _musepose_width(((x1 - x2) ** 2 + (y1 - y2) ** 2) ** 0.5)
                _thick_line(canvas, x1, y1, x2, y2, thickness, np.asarray(color, np.uint8))
            _draw_points(canvas, hand, scale, threshold, _MUSEPOSE_HAND_DOT if musepose else _OPENPOSE_HAND_DOT,
                         hand_dot)
    face_dot = np.asarray(FACE_DOT_COLOR, np.uint8)
    for person in people:
        if person.face is not None:
            _draw_points(canvas, person.face, scale, threshold, _FACE_DOT_RADIUS, face_dot)

    if musepose:  # MusePose draws these colours into a BGR canvas, then converts it to RGB
        canvas = np.ascontiguousarray(canvas[..., ::-1])
    return Image.fromarray(canvas, "RGB")


def render_face_landmarks(
    landmarks: np.ndarray | Person | Iterable[Person] | Iterable[np.ndarray],
    size: int | tuple[int, int] = (512, 512),
    style: str = "rain",
    threshold: float = 0.3,
    source_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Draw the face-landmark condition RAIN-v0.1 is driven by: coloured dots on black.

    Input: 68 face landmarks per face in the iBUG / 300-W order (jaw 0-16, brows 17-26, nose 27-35,
    eyes 36-47, mouth 48-67; the order of COCO-WholeBody's face, which DWPose and RAIN use), in pixels
    of the image they were found in. They come from a 68-point face-landmark detector (RAIN uses
    DWPose's whole-body model; dlib, face-alignment or PFLD give the same layout). turbonext ships none:
    its detectors give the 17 COCO body keypoints only, and their five face points are not enough.

    Drawing (``style="rain"``, RAIN's ``draw_facepose`` with its ``patterns``): for each of the 26
    groups of :data:`RAIN_FACE_PATTERNS`, one filled circle at the mean of the group's landmarks (x, y
    truncated to whole pixels), in the group's RGB colour, on a black image. The radius is
    ``max(int(3 * d / 0.3), 1)`` where ``d`` is the distance from landmark 27 (top of the nose) to
    landmark 8 (chin) in coordinates normalised by the image's width and height (3 px for a face whose
    27-8 distance is 30% of a square image). A group with a landmark under ``threshold`` is not drawn
    (RAIN fills such landmarks from the previous frame first); if 27 or 8 is missing the radius is 1.
    A dot is drawn only at int(x) >= 1 and int(y) >= 1, as in DWPose.

    Not reproduced: RAIN's demo first moves the landmarks with 13 ``translation`` transforms (in its
    src/morpher.py) toward anime-face proportions (the whole face squashed vertically to 0.75, the
    eyes widened 1.6x and stretched 3x vertically, the mouth narrowed, the jaw pulled in 0.9x, plus
    shifts relative to face lengths), and it damps landmarks over frames and keeps one face. This
    function draws the landmarks it is given; apply such a morph to them beforehand to match the demo.
    RAIN draws at 512 x 512 (its detection size); the dot radius is in pixels of ``size``.

    Args:
        landmarks: one face (68, 2) or (68, 3) (x px, y px[, confidence]), several faces (N, 68, 2|3),
            or :class:`~turbonext.pose.Person` objects whose ``face`` is set (others are skipped).
        size: output (width, height), or one int for a square.
        style: one of :data:`FACE_STYLES` (``"rain"``).
        threshold: landmarks with a confidence below this are missing.
        source_size: (width, height) of the image the landmarks were found in, when it differs from
            ``size``; landmarks are then scaled to the output.

    Returns:
        An RGB ``PIL.Image.Image`` of ``size``.
    """
    _check_style(style, FACE_STYLES, "face")
    width, height = _parse_size(size)
    faces = _as_faces(landmarks)
    scale = _source_scale((width, height), source_size)
    canvas = np.zeros((height, width, 3), np.uint8)
    for face in faces:
        norm = _normalised(face, scale, (width, height))
        ok = (face[:, 2] >= threshold) & np.isfinite(norm).all(axis=1)
        radius = 1
        if ok[27] and ok[8]:
            dx, dy = float(norm[27, 0] - norm[8, 0]), float(norm[27, 1] - norm[8, 1])
            radius = max(int(3 * (math.sqrt(dx**2 + dy**2) / 0.3)), 1)
        for indices, color in RAIN_FACE_PATTERNS:
            if not ok[list(indices)].all():
                continue
            nx, ny = np.mean(norm[list(indices)], axis=0)  # float32
            ix, iy = _pixel(nx, width), _pixel(ny, height)
            if ix > _EPS and iy > _EPS:
                _disc(canvas, ix, iy, radius, np.asarray(color, np.uint8))
    return Image.fromarray(canvas, "RGB")


def _as_faces(landmarks) -> list[np.ndarray]:
    """Normalise the inputs of :func:`render_face_landmarks` to a list of float32 (68, 3) arrays."""
    if isinstance(landmarks, Person):
        landmarks = [landmarks]
    if isinstance(landmarks, np.ndarray):
        items = [landmarks] if landmarks.ndim == 2 else list(landmarks)
    else:
        items = list(landmarks)
    faces = []
    for item in items:
        if isinstance(item, Person):
            if item.face is not None:
                faces.append(item.face)
            continue
        array = np.asarray(item, np.float32)
        if array.shape == (NUM_FACE_LANDMARKS, 2):
            array = np.concatenate([array, np.ones((NUM_FACE_LANDMARKS, 1), np.float32)], axis=1)
        if array.shape != (NUM_FACE_LANDMARKS, 3):
            raise ValueError(
                f"face landmarks must have shape (68, 2) or (68, 3) (x px, y px[, confidence]) per face, "
                f"or (N, 68, 2|3); got a face of shape {array.shape}."
            )
        faces.append(array)
    return faces
