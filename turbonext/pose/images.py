"""Image inputs accepted by detectors and segmenters, checked once, in one place.

Every backend takes a ``PIL.Image.Image`` in mode "RGB" or a numpy ``uint8`` array (H, W, 3) in
RGB order, and gets back an RGB array. Anything else raises a ``ValueError`` that says what was
given and what is accepted, instead of being silently converted.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Return ``image`` as a C-contiguous uint8 RGB array (H, W, 3).

    Raises:
        ValueError: for a PIL image that is not mode "RGB", an array that is not uint8 (H, W, 3),
            or an empty image.
    """
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(
                f"expected an RGB image; got PIL mode {image.mode!r}. Convert it first with "
                f"image.convert('RGB') (for RGBA, composite it on a background you choose)."
            )
        array = np.asarray(image)
    elif isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            raise ValueError(
                f"expected a uint8 RGB array (H, W, 3); got dtype {array.dtype}. Scale float images "
                f"to 0..255 and cast with .astype(np.uint8)."
            )
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(
                f"expected a uint8 RGB array of shape (H, W, 3); got shape {array.shape}. "
                f"Grey images: np.repeat(img[..., None], 3, axis=2); RGBA: img[..., :3]."
            )
    else:
        raise ValueError(
            f"expected a PIL.Image.Image (mode RGB) or a numpy uint8 array (H, W, 3); "
            f"got {type(image).__name__}."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {array.shape}).")
    return np.ascontiguousarray(array)


def offline_mode() -> bool:
    """True when the environment asks for no downloads (HF_HUB_OFFLINE=1 or YOLO_OFFLINE=1)."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on") for var in ("HF_HUB_OFFLINE", "YOLO_OFFLINE"))
