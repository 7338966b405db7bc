"""Square crops around a person: the crop box, black padding outside the frame, no stretching.

A crop is ``(x0, y0, side)`` in source pixels: the square ``[x0, x0 + side) x [y0, y0 + side)``.
It may reach outside the frame; those pixels come out pure black. The square is then resized
uniformly to the output size, so people are never stretched.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from turbonext.pose.keypoints import BBox, Person


CropBox = tuple[float, float, float]


def square_crop_box(box: BBox, margin: float = 0.2, min_side: float = 16.0) -> CropBox:
    """The square around ``box`` (x0, y0, x1, y1), centred on it, side = longer edge * (1 + 2 * margin)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (a fraction of the person's size); got {margin}.")
    x0, y0, x1, y1 = box
    if not (x1 >= x0 and y1 >= y0):
        raise ValueError(f"box must be (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0; got {box}.")
    side = max(x1 - x0, y1 - y0, min_side) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return (cx - side / 2.0, cy - side / 2.0, side)


def _integer_crop(crop: CropBox) -> tuple[int, int, int]:
    x0, y0, side = crop
    return int(round(x0)), int(round(y0)), max(1, int(round(side)))


def crop_square(image: np.ndarray, crop: CropBox, size: int, resample: int = Image.BICUBIC) -> np.ndarray:
    """Cut ``crop`` out of ``image`` (H, W) or (H, W, C), pad black outside the frame, resize to size x size."""
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or (H, W, C); got shape {image.shape}.")
    x0, y0, side = _integer_crop(crop)
    h, w = image.shape[:2]
    out = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    if side == size:
        return out
    return np.array(Image.fromarray(out).resize((size, size), resample))  # a writable copy


def keypoints_to_crop(person: Person, crop: CropBox, size: int) -> Person:
    """``person`` in the coordinates of the resized crop (what :func:`crop_square` returns)."""
    x0, y0, side = _integer_crop(crop)
    scale = size / side
    return person.transformed(scale=scale, offset=(-x0 * scale, -y0 * scale))
