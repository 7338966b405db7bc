"""A tiny anti-aliased numpy rasteriser for shaded capsules, rounded polygons and spheres.

Every shape is painted "over" what is already on the canvas (painter's algorithm) with an
analytic coverage (1 px soft edge), so figures are smooth without supersampling. A shape's colour
may vary per pixel (patterns) and is multiplied by a shading term that makes limbs look round.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


Color = tuple[float, float, float]
# A colour function gets local coordinates (along, across) in body units, each (h, w), and
# returns an (h, w, 3) RGB array in [0, 255].
ColorFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def solid(color: Color) -> ColorFn:
    """A colour function painting one flat colour."""
    c = np.asarray(color, dtype=np.float32)

    def fn(along: np.ndarray, across: np.ndarray) -> np.ndarray:
        return np.broadcast_to(c, along.shape + (3,))

    return fn


class Canvas:
    """An RGB float canvas (h, w, 3) in [0, 255], black at the start."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = int(width), int(height)
        self.rgb = np.zeros((self.height, self.width, 3), dtype=np.float32)

    def _window(self, x0: float, y0: float, x1: float, y1: float):
        """Integer pixel window covering a box, clipped to the canvas, and its pixel-centre grids."""
        ix0, iy0 = max(0, int(np.floor(x0)) - 1), max(0, int(np.floor(y0)) - 1)
        ix1, iy1 = min(self.width, int(np.ceil(x1)) + 2), min(self.height, int(np.ceil(y1)) + 2)
        if ix0 >= ix1 or iy0 >= iy1:
            return None
        yy, xx = np.mgrid[iy0:iy1, ix0:ix1].astype(np.float32) + 0.5  # (h, w) pixel centres
        return (slice(iy0, iy1), slice(ix0, ix1)), xx, yy

    def _paint(self, win, alpha: np.ndarray, color: np.ndarray) -> None:
        a = np.clip(alpha, 0.0, 1.0)[..., None]  # (h, w, 1)
        region = self.rgb[win]
        self.rgb[win] = region * (1 - a) + np.clip(color, 0, 255) * a

    def capsule(
        self,
        a: np.ndarray,
        b: np.ndarray,
        radius_a: float,
        radius_b: float | None = None,
        color: ColorFn | Color = (255, 255, 255),
        unit: float = 1.0,
        shade: tuple[float, float] = (0.62, 0.38),
        mask: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """A (tapered) capsule from ``a`` to ``b`` (px), radii in px, rounded and shaded.

        ``unit`` is pixels per body unit, so patterns keep their size on the body. ``shade`` is
        (ambient, diffuse): brightness = ambient + diffuse * sqrt(1 - (distance/radius)^2).
        ``mask(xx, yy)`` optionally multiplies the coverage (for cut-outs).
        """
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        rb = radius_a if radius_b is None else radius_b
        r_max = max(radius_a, rb)
        win = self._window(min(a[0], b[0]) - r_max, min(a[1], b[1]) - r_max, max(a[0], b[0]) + r_max, max(a[1], b[1]) + r_max)
        if win is None or r_max <= 0:
            return
        win, xx, yy = win
        ab = b - a
        length = float(np.hypot(*ab))
        axis = ab / length if length > 1e-6 else np.array([0.0, 1.0], np.float32)
        normal = np.array([-axis[1], axis[0]], np.float32)
        px, py = xx - a[0], yy - a[1]
        along = px * axis[0] + py * axis[1]  # (h, w) px along the axis
        across = px * normal[0] + py * normal[1]
        u = np.clip(along / max(length, 1e-6), 0.0, 1.0)
        radius = radius_a + (rb - radius_a) * u
        dist = np.hypot(px - u * ab[0], py - u * ab[1])
        alpha = radius - dist + 0.5
        if mask is not None:
            alpha = np.clip(alpha, 0.0, 1.0) * mask(xx, yy)
        q = np.clip(dist / np.maximum(radius, 1e-6), 0.0, 1.0)
        brightness = shade[0] + shade[1] * np.sqrt(1.0 - q * q)
        fn = color if callable(color) else solid(color)
        rgb = fn(along / unit, across / unit) * brightness[..., None]
        self._paint(win, alpha, rgb)

    def polygon(
        self,
        points: np.ndarray,
        rounding: float,
        color: ColorFn | Color,
        origin: np.ndarray,
        axis: np.ndarray,
        half_width: Callable[[np.ndarray], np.ndarray],
        unit: float = 1.0,
        shade: tuple[float, float] = (0.62, 0.38),
    ) -> None:
        """A convex polygon (k, 2) px, counter-clockwise or clockwise, grown by ``rounding`` px.

        Shading and patterns use a frame at ``origin`` with unit ``axis`` (along); brightness
        falls off with |across| / half_width(along) as on a cylinder.
        """
        pts = np.asarray(points, np.float32)
        lo, hi = pts.min(axis=0) - rounding, pts.max(axis=0) + rounding
        win = self._window(lo[0], lo[1], hi[0], hi[1])
        if win is None:
            return
        win, xx, yy = win
        k = len(pts)
        centroid = pts.mean(axis=0)
        inside_dist = np.full(xx.shape, -np.inf, np.float32)  # max signed distance to edge lines
        seg_dist = np.full(xx.shape, np.inf, np.float32)
        for i in range(k):
            p, q = pts[i], pts[(i + 1) % k]
            e = q - p
            # outward normal: pointing away from the centroid
            n = np.array([e[1], -e[0]], np.float32) / max(float(np.hypot(*e)), 1e-6)
            if np.dot(centroid - p, n) > 0:
                n = -n
            inside_dist = np.maximum(inside_dist, (xx - p[0]) * n[0] + (yy - p[1]) * n[1])
            t = np.clip(((xx - p[0]) * e[0] + (yy - p[1]) * e[1]) / max(float(e @ e), 1e-6), 0, 1)
            seg_dist = np.minimum(seg_dist, np.hypot(xx - p[0] - t * e[0], yy - p[1] - t * e[1]))
        signed = np.where(inside_dist <= 0, inside_dist, seg_dist)
        alpha = rounding - signed + 0.5
        ax = np.asarray(axis, np.float32)
        along = (xx - origin[0]) * ax[0] + (yy - origin[1]) * ax[1]
        across = -(xx - origin[0]) * ax[1] + (yy - origin[1]) * ax[0]
        q = np.clip(np.abs(across) / np.maximum(half_width(along), 1e-6), 0.0, 1.0)
        brightness = shade[0] + shade[1] * np.sqrt(1.0 - q * q)
        fn = color if callable(color) else solid(color)
        self._paint(win, alpha, fn(along / unit, across / unit) * brightness[..., None])

    def sphere(
        self,
        centre: np.ndarray,
        radius_x: float,
        radius_y: float,
        color: Color,
        mask: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
        shade: tuple[float, float] = (0.6, 0.4),
    ) -> None:
        """A shaded ellipse. ``mask(nx, ny, nz)`` gets the ellipsoid's surface normal per pixel."""
        c = np.asarray(centre, np.float32)
        win = self._window(c[0] - radius_x, c[1] - radius_y, c[0] + radius_x, c[1] + radius_y)
        if win is None or radius_x <= 0 or radius_y <= 0:
            return
        win, xx, yy = win
        nx, ny = (xx - c[0]) / radius_x, (yy - c[1]) / radius_y
        rho = np.hypot(nx, ny)
        alpha = (1.0 - rho) * min(radius_x, radius_y) + 0.5
        nz = np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0))
        if mask is not None:
            alpha = np.minimum(alpha, 1.0) * mask(nx, ny, nz)
        brightness = shade[0] + shade[1] * nz
        rgb = np.asarray(color, np.float32) * brightness[..., None]
        self._paint(win, alpha, rgb)

    def to_uint8(self) -> np.ndarray:
        """The canvas as uint8 (h, w, 3)."""
        return np.clip(np.rint(self.rgb), 0, 255).astype(np.uint8)


def stripes(color_a: Color, color_b: Color, period: float, unit: float, checks: bool = False) -> ColorFn:
    """Bands across the ``along`` axis (or checks) of ``period`` body units, anti-aliased.

    ``unit`` is pixels per body unit; the soft edge is about one pixel wide.
    """
    ca, cb = np.asarray(color_a, np.float32), np.asarray(color_b, np.float32)
    sharp = period * unit / (2 * np.pi)  # slope so that the edge spans ~1 px

    def fn(along: np.ndarray, across: np.ndarray) -> np.ndarray:
        wave = np.sin(2 * np.pi * along / period)
        if checks:
            wave = wave * np.sin(2 * np.pi * across / period) * 2.0
        mix = np.clip(0.5 + wave * sharp, 0.0, 1.0)[..., None]
        return ca * (1 - mix) + cb * mix

    return fn
