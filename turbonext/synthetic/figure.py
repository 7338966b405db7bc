"""Synthetic people: a seeded random :class:`Identity` and :func:`draw_figure`, which paints it.

A figure is drawn from COCO-17 keypoints (pixels) as shaded capsules, a rounded torso and an
ellipsoid head, on pure black, back to front by depth. Identity = clothing colours and patterns
(solid, stripes, checks; short/long sleeves; trousers or shorts; an optional chest emblem on the
front only), skin tone, hair style and colour, and body proportions (:class:`BodyShape`). Clothing
colours come from one of two palettes: :data:`CLOTH_COLORS` (``palette="train"``, every training
identity) or :data:`HELD_OUT_CLOTH_COLORS` (``palette="held_out"``: saturated magentas, greens, violets
and azures at least 60 (of 255, in the largest channel) from every training colour), which only some
held-out identities wear, to test whether a model copies colours it never saw. The
face (eyes, mouth) is drawn only where its keypoints are visible, and hair covers the back of the
head, so a figure seen from behind looks different from the front, as a person does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from PIL import Image

import turbonext.synthetic.motion as M
from turbonext.synthetic.motion import BodyShape
from turbonext.synthetic.raster import Canvas, ColorFn, solid, stripes


Color = tuple[int, int, int]

CLOTH_COLORS: tuple[Color, ...] = (
    (200, 40, 40), (40, 80, 200), (48, 58, 125), (40, 150, 70), (120, 130, 50), (230, 200, 50),
    (235, 130, 40), (130, 60, 170), (235, 130, 170), (235, 235, 235), (140, 140, 145), (30, 150, 150),
    (130, 85, 50), (210, 190, 150), (70, 100, 150), (130, 35, 55), (80, 200, 220), (150, 210, 60),
)
#: Clothing colours no training identity wears (``Identity.random(seed, palette="held_out")``): each is at
#: least 60 from every :data:`CLOTH_COLORS` entry in its largest channel difference (before the +-12 jitter).
HELD_OUT_CLOTH_COLORS: tuple[Color, ...] = (
    (235, 20, 200), (30, 240, 40), (20, 240, 160), (180, 40, 255), (0, 165, 255), (110, 50, 255),
    (255, 0, 110), (255, 255, 110),
)
PALETTES: dict[str, tuple[Color, ...]] = {"train": CLOTH_COLORS, "held_out": HELD_OUT_CLOTH_COLORS}
SKIN_TONES: tuple[Color, ...] = (
    (255, 224, 196), (241, 194, 165), (224, 172, 130), (198, 134, 96), (160, 105, 70), (120, 80, 55), (98, 64, 45),
)
HAIR_COLORS: tuple[Color, ...] = (
    (62, 50, 44), (88, 58, 38), (135, 88, 52), (218, 182, 112), (172, 78, 42), (175, 175, 178), (70, 95, 205), (222, 105, 165),
)
SHOE_COLORS: tuple[Color, ...] = ((70, 70, 76), (232, 232, 232), (112, 72, 42), (190, 45, 45), (60, 90, 160))
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bun", "curly", "buzz")
PATTERNS: tuple[str, ...] = ("solid", "stripes", "checks")


@dataclass(frozen=True)
class Identity:
    """How one synthetic person looks. Build one with :meth:`random`."""

    seed: int
    skin: Color
    hair_color: Color
    hair_style: str
    shirt_color: Color
    shirt_color2: Color
    shirt_pattern: str
    sleeves: str  # "short" | "long"
    trousers_color: Color
    trousers_color2: Color
    trousers_pattern: str
    trousers_kind: str  # "long" | "shorts"
    shoe_color: Color
    emblem_color: Color | None
    shape: BodyShape = field(default_factory=BodyShape)
    palette: str = "train"  # which clothing palette: a key of PALETTES

    @classmethod
    def random(cls, seed: int, palette: str = "train") -> "Identity":
        """A random identity; the same ``seed`` (and ``palette``) always gives the same person.

        ``palette``: "train" (:data:`CLOTH_COLORS`, every training identity; the same person as before
        palettes existed) or "held_out" (:data:`HELD_OUT_CLOTH_COLORS`: shirt, trousers, their contrast
        colours and the emblem all off the training palette; skin, hair and shoes as usual).
        """
        if palette not in PALETTES:
            raise ValueError(f"palette must be one of {sorted(PALETTES)}; got {palette!r}.")
        cloth = PALETTES[palette]
        rng = np.random.default_rng([int(seed), 0x1D])

        def pick(options, avoid=()):
            allowed = [c for c in options if c not in avoid]
            c = allowed[int(rng.integers(len(allowed)))]
            if isinstance(c, str):
                return c
            return tuple(int(np.clip(v + rng.integers(-12, 13), 0, 255)) for v in c)

        shirt = pick(cloth)
        trousers = pick(cloth)
        return cls(
            seed=int(seed),
            skin=pick(SKIN_TONES),
            hair_color=pick(HAIR_COLORS),
            hair_style=pick(HAIR_STYLES),
            shirt_color=shirt,
            shirt_color2=pick(cloth, avoid=_near(shirt, cloth)),
            shirt_pattern=str(rng.choice(PATTERNS, p=[0.4, 0.35, 0.25])),
            sleeves=str(rng.choice(["short", "long"])),
            trousers_color=trousers,
            trousers_color2=pick(cloth, avoid=_near(trousers, cloth)),
            trousers_pattern=str(rng.choice(PATTERNS, p=[0.6, 0.2, 0.2])),
            trousers_kind=str(rng.choice(["long", "shorts"], p=[0.7, 0.3])),
            shoe_color=pick(SHOE_COLORS),
            emblem_color=pick(cloth, avoid=_near(shirt, cloth)) if rng.random() < 0.6 else None,
            shape=BodyShape.random(rng),
            palette=palette,
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable description."""
        return asdict(self)


def _near(color: Color, palette: tuple[Color, ...] = CLOTH_COLORS) -> tuple[Color, ...]:
    """Entries of ``palette`` too close to ``color`` to serve as its contrast colour."""
    return tuple(c for c in palette if np.abs(np.subtract(c, color)).sum() < 150)


_BONES = ((5, 7, "upper_arm"), (6, 8, "upper_arm"), (7, 9, "forearm"), (8, 10, "forearm"),
          (11, 13, "thigh"), (12, 14, "thigh"), (13, 15, "shin"), (14, 16, "shin"))


def estimate_scale(keypoints: np.ndarray, shape: BodyShape) -> float:
    """Pixels per body unit: the longest bone relative to its true length (foreshortening only shrinks)."""
    kp = np.asarray(keypoints, np.float64)
    ratios = [np.hypot(*(kp[b, :2] - kp[a, :2])) / getattr(shape, name) for a, b, name in _BONES]
    torso = np.hypot(*(kp[[5, 6], :2].mean(0) - kp[[11, 12], :2].mean(0))) / shape.torso
    return float(max(max(ratios), torso, 1e-3))


def _facing(kp: np.ndarray, depth: np.ndarray | None, shape: BodyShape, s: float) -> tuple[float, float]:
    """Unit forward direction of the body as (image x component, towards-camera component)."""
    dx = kp[M.L_SHOULDER, 0] - kp[M.R_SHOULDER, 0]
    if depth is not None:
        dz = depth[M.L_SHOULDER] - depth[M.R_SHOULDER]
        norm = max(float(np.hypot(dx, dz)), 1e-6)
        return float(-dz / norm), float(dx / norm)
    fz = float(np.clip(dx / (2 * shape.shoulder_half * s), -1, 1))
    sign = 1.0
    if kp[M.NOSE, 2] > 0.3:
        sign = 1.0 if kp[M.NOSE, 0] >= kp[[M.L_EAR, M.R_EAR], 0].mean() else -1.0
    return sign * float(np.sqrt(1 - fz * fz)), fz


def draw_figure(
    identity: Identity,
    keypoints: np.ndarray,
    size: int | tuple[int, int],
    depth: np.ndarray | None = None,
    scale: float | None = None,
) -> Image.Image:
    """Paint ``identity`` in the pose ``keypoints`` on pure black.

    Args:
        identity: the person's look and body proportions.
        keypoints: (17, 3) COCO-17 [x px, y px, visibility]; x and y must be valid for every joint
            (visibility only decides whether eyes, nose/mouth and ears are drawn).
        size: image (width, height) in pixels, or one int for a square.
        depth: optional (17,) depth per joint in px (larger = nearer the camera), which orders the
            limbs; without it the depth is guessed from the shoulders and the nose.
        scale: pixels per body unit; estimated from the bone lengths when omitted.

    Returns:
        An RGB ``PIL.Image.Image``.
    """
    width, height = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    kp = np.asarray(keypoints, np.float64)
    if kp.shape != (17, 3) or not np.isfinite(kp[:, :2]).all():
        raise ValueError(f"keypoints must be a finite (17, 3) array [x, y, visibility]; got shape {kp.shape}.")
    shape = identity.shape
    s = float(scale) if scale is not None else estimate_scale(kp, shape)
    fx, fz = _facing(kp, depth, shape, s)
    if depth is None:
        side = np.array([0, 1, -1, 1, -1] + [1, -1] * 6, np.float64)
        depth = side * (-fx) * shape.shoulder_half * s
    z = np.asarray(depth, np.float64)
    canvas = Canvas(width, height)
    parts: list[tuple[float, Callable[[], None]]] = list(_body_parts(identity, kp, z, s, fx, fz, canvas))
    for _, fn in sorted(parts, key=lambda item: item[0]):  # back to front; stable for equal depths
        fn()
    return Image.fromarray(canvas.to_uint8(), "RGB")


def _cloth(color: Color, color2: Color, pattern: str, s: float) -> ColorFn:
    if pattern == "solid":
        return solid(color)
    return stripes(color, color2, period=0.045, unit=s, checks=pattern == "checks")


def _body_parts(ident: Identity, kp: np.ndarray, z: np.ndarray, s: float, fx: float, fz: float, cv: Canvas):
    """Yield (depth key, draw callback) for every part of the figure."""
    sh, g = ident.shape, ident.shape.girth
    xy = kp[:, :2]
    shirt = _cloth(ident.shirt_color, ident.shirt_color2, ident.shirt_pattern, s)
    trousers = _cloth(ident.trousers_color, ident.trousers_color2, ident.trousers_pattern, s)
    skin = solid(ident.skin)
    eps = 1e-3 * s

    # Torso and pelvis: rounded quads whose apparent width follows the facing.
    ms, mh = xy[[5, 6]].mean(0), xy[[11, 12]].mean(0)
    axis = (mh - ms) / max(float(np.hypot(*(mh - ms))), 1e-6)
    normal = np.array([-axis[1], axis[0]])
    top_hw = s * np.hypot((sh.shoulder_half + 0.012) * fz, 0.075 * g * fx)
    bot_hw = s * np.hypot((sh.hip_half + 0.03 * g) * fz, 0.07 * g * fx)
    rnd = 0.028 * s
    top, hem = ms - axis * 0.02 * s, ms + 0.9 * (mh - ms)
    torso_len = max(float(np.hypot(*(hem - top))), 1e-6)

    def half_width(along: np.ndarray) -> np.ndarray:
        u = np.clip(along / torso_len, 0, 1)
        return top_hw + (bot_hw - top_hw) * u + rnd

    def quad(a: np.ndarray, b: np.ndarray, wa: float, wb: float) -> np.ndarray:
        return np.array([a + normal * max(wa - rnd, 0.5), b + normal * max(wb - rnd, 0.5),
                         b - normal * max(wb - rnd, 0.5), a - normal * max(wa - rnd, 0.5)])

    torso_z = float(z[[5, 6, 11, 12]].mean())
    yield torso_z, lambda: cv.polygon(quad(top, hem, top_hw, bot_hw), rnd, shirt, top, axis, half_width, unit=s)
    waist = ms + 0.75 * (mh - ms)
    low = mh + axis * 0.035 * s
    yield torso_z - 2 * eps, lambda: cv.polygon(quad(waist, low, bot_hw, bot_hw), rnd, trousers, waist, axis,
                                                lambda a: np.full_like(a, bot_hw + rnd), unit=s)
    if ident.emblem_color is not None and fz > 0.15:
        centre = ms + 0.33 * (mh - ms) + np.array([fx * 0.06 * s, 0.0])
        yield torso_z + eps, lambda: cv.sphere(centre, 0.032 * s * fz, 0.032 * s, ident.emblem_color, shade=(0.85, 0.15))

    # Legs: skin underneath for shorts, trousers, shoes.
    for hip, knee, ankle in ((11, 13, 15), (12, 14, 16)):
        key = float(z[[hip, knee, ankle]].mean()) - 0.004 * s

        def leg(hip=hip, knee=knee, ankle=ankle) -> None:
            t_r, k_r, a_r = 0.052 * g * s, 0.04 * g * s, 0.03 * g * s
            if ident.trousers_kind == "shorts":
                cv.capsule(xy[hip], xy[knee], t_r * 0.85, k_r * 0.8, skin, s)
                cv.capsule(xy[knee], xy[ankle], k_r * 0.8, a_r * 0.8, skin, s)
                cv.capsule(xy[hip], xy[hip] + 0.7 * (xy[knee] - xy[hip]), t_r, t_r * 0.95, trousers, s)
            else:
                cv.capsule(xy[hip], xy[knee], t_r, k_r, trousers, s)
                cv.capsule(xy[knee], xy[ankle], k_r, a_r, trousers, s)
            heel = xy[ankle] + np.array([-fx * 0.01, 0.018]) * s
            toe = xy[ankle] + np.array([fx * 0.07, 0.028]) * s
            cv.capsule(heel, toe, 0.026 * s, 0.022 * s, ident.shoe_color, s)

        yield key, leg

    # Arms: skin, sleeves, hands; drawn in front of the torso unless turned away.
    for shoulder, elbow, wrist in ((5, 7, 9), (6, 8, 10)):
        key = float(z[[shoulder, elbow, wrist]].mean()) + 0.03 * s

        def arm(shoulder=shoulder, elbow=elbow, wrist=wrist) -> None:
            u_r, f_r = 0.036 * g * s, 0.027 * g * s
            sleeve_r = u_r * 1.2
            if ident.sleeves == "long":
                cv.capsule(xy[shoulder], xy[elbow], sleeve_r, u_r * 1.05, shirt, s)
                cv.capsule(xy[elbow], xy[wrist], u_r * 1.0, f_r * 1.1, shirt, s)
            else:
                cv.capsule(xy[shoulder], xy[elbow], u_r, f_r * 1.05, skin, s)
                cv.capsule(xy[elbow], xy[wrist], f_r * 1.05, f_r * 0.9, skin, s)
                cv.capsule(xy[shoulder], xy[shoulder] + 0.55 * (xy[elbow] - xy[shoulder]), sleeve_r, sleeve_r * 0.95, shirt, s)
            d = xy[wrist] - xy[elbow]
            hand = xy[wrist] + d / max(float(np.hypot(*d)), 1e-6) * 0.03 * s
            cv.capsule(xy[wrist], hand, 0.026 * s, 0.03 * s, skin, s)

        yield key, arm

    # Neck, head, hair, face.
    yield from _head_parts(ident, kp, z, s, fx, fz, cv, torso_z, ms)


_HAIR = {  # radius (head radii), side threshold, hairline (ny), bottom (ny)
    "short": (1.08, -0.05, -0.42, 0.3),
    "buzz": (1.02, 0.15, -0.55, 0.15),
    "long": (1.1, 0.2, -0.38, 1.0),
    "bun": (1.07, -0.05, -0.45, 0.35),
    "curly": (1.14, 0.0, -0.32, 0.45),
}


def _head_parts(ident: Identity, kp: np.ndarray, z: np.ndarray, s: float, fx: float, fz: float, cv: Canvas,
                torso_z: float, ms: np.ndarray):
    """Yield (depth key, draw callback) for the neck, head, hair and face."""
    h = ident.shape.head * s  # head radius, px
    xy = kp[:, :2]
    centre = xy[[3, 4]].mean(0)
    head_z = float(z[[3, 4]].mean()) + 0.02 * s
    eps = 1e-3 * s
    yield torso_z - eps, lambda: cv.capsule(ms, centre, 0.032 * ident.shape.girth * s, None, ident.skin, s)
    radius, side_t, hairline, bottom = _HAIR[ident.hair_style]
    if ident.hair_style == "long":
        back = np.array([-fx * 0.4 * h, 0.0])  # hair hangs from the back of the head
        yield torso_z - fz * 0.1 * s - eps, lambda: cv.capsule(centre + back + np.array([0, 0.1 * h]),
                                                                centre + back + np.array([0, 2.5 * h]),
                                                                1.0 * h, 0.85 * h, ident.hair_color, s, shade=(0.7, 0.3))
    if ident.hair_style == "bun":
        bun = centre + np.array([-fx * 0.55 * h, -0.95 * h])
        yield head_z - fz * 0.6 * h, lambda: cv.sphere(bun, 0.42 * h, 0.42 * h, ident.hair_color, shade=(0.7, 0.3))

    def head() -> None:
        cv.sphere(centre, h, 1.12 * h, ident.skin, shade=(0.68, 0.32))
        for ear in (3, 4):
            if kp[ear, 2] > 0.3 and abs(fx) > 0.25:
                cv.sphere(xy[ear] + np.array([0, 0.1 * h]), 0.2 * h, 0.28 * h, ident.skin, shade=(0.6, 0.3))
        # Face: eyes and mouth where visible.
        for eye in (1, 2):
            if kp[eye, 2] > 0.3:
                cv.sphere(xy[eye], 0.13 * h, 0.16 * h, (70, 45, 38), shade=(1.0, 0.0))
        if kp[0, 2] > 0.3:
            eyes = xy[[1, 2]].mean(0)
            mouth = xy[0] + (xy[0] - eyes) * 0.9
            half = np.array([0.22 * h * max(fz, 0.3), 0.0])
            cv.capsule(mouth - half, mouth + half, 0.07 * h, None, (165, 70, 70), s, shade=(1.0, 0.0))
        # Hair: the part of a slightly larger ellipsoid that is not the face.
        k = radius * h  # px per unit of the normalised normal, for ~1 px soft edges

        def hair_mask(nx: np.ndarray, ny: np.ndarray, nz: np.ndarray) -> np.ndarray:
            forward = nx * fx + nz * fz
            face = np.clip((forward - side_t) * k * 0.5 + 0.5, 0, 1) * np.clip((ny - hairline) * k + 0.5, 0, 1)
            below = np.clip((bottom - ny) * k + 0.5, 0, 1)
            return (1 - face) * below

        cv.sphere(centre, radius * h, radius * 1.1 * h, ident.hair_color, mask=hair_mask, shade=(0.72, 0.28))
        if ident.hair_style == "curly":
            for ang in np.linspace(-165, -15, 7):
                a = np.radians(ang)
                c = centre + np.array([np.cos(a) * 1.0 * h, np.sin(a) * 1.08 * h])
                cv.sphere(c, 0.33 * h, 0.33 * h, ident.hair_color, shade=(0.72, 0.28))

    yield head_z, head
