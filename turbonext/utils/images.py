"""Every image conversion of turbonext, in one place, with errors that say what is accepted.

* model inputs: :func:`image_to_tensor` / :func:`images_to_tensor` (PIL, numpy or torch -> float tensors
  in [0, 1]) and :func:`tensor_to_pil` back;
* backend inputs (pose detectors, segmenters): :func:`to_rgb_array`, strict uint8 RGB (H, W, 3);
* user files and uploads: :func:`load_rgb` (a path, PIL image or array -> uint8 RGB);
* display: :func:`side_by_side` (columns of frames -> one frame per row).

torch is imported only by the tensor conversions, so the pose and data packages use this module
without loading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import PIL.Image


if TYPE_CHECKING:
    import torch

REFERENCE_MODES = ("RGB", "RGBA", "L", "LA", "P")
ACCEPTED = (
    "a PIL image, a numpy array (H, W, 3) uint8 in [0, 255] or float in [0, 1], "
    "or a torch tensor (3, H, W) float in [0, 1]"
)


def image_to_tensor(image, name: str = "image") -> "torch.Tensor":
    """One RGB image -> float tensor (3, H, W) in [0, 1].

    PIL images of any mode are converted to RGB (an alpha channel is composited on black, matching
    the training data's black background). Arrays and tensors must already have 3 channels.
    """
    import torch
    if isinstance(image, PIL.Image.Image):
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            background = PIL.Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            image = PIL.Image.alpha_composite(background, rgba)
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{name}: expected a numpy array of shape (H, W, 3), got {image.shape}. Accepted: {ACCEPTED}.")
        if image.dtype == np.uint8:
            array = image.astype(np.float32) / 255.0
        elif np.issubdtype(image.dtype, np.floating):
            array = image.astype(np.float32)
        else:
            raise ValueError(f"{name}: numpy dtype {image.dtype} is not supported. Accepted: {ACCEPTED}.")
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"{name}: expected a tensor of shape (3, H, W), got {tuple(image.shape)}. Accepted: {ACCEPTED}.")
        if not image.is_floating_point():
            return image.float() / 255.0
        return image.float()
    raise ValueError(f"{name}: unsupported type {type(image).__name__}. Accepted: {ACCEPTED}.")


def images_to_tensor(images, name: str = "pose_images") -> "torch.Tensor":
    """A sequence of images -> float tensor (F, 3, H, W) in [0, 1].

    Accepts a list of single images (any of the types above), a numpy array (F, H, W, 3) or a
    tensor (F, 3, H, W). All frames must share one size.
    """
    import torch
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)  # an empty (0, H, W, 3) array becomes [] and is reported below
    elif isinstance(images, torch.Tensor) and images.ndim == 4:
        if images.shape[1] != 3:
            raise ValueError(f"{name}: expected a tensor of shape (F, 3, H, W), got {tuple(images.shape)}.")
        if images.shape[0] == 0:
            raise ValueError(f"{name} is empty: give at least one pose image.")
        return images.float() if images.is_floating_point() else images.float() / 255.0
    elif isinstance(images, (PIL.Image.Image, np.ndarray, torch.Tensor)):
        images = [images]
    if not isinstance(images, Sequence) or isinstance(images, str):
        raise ValueError(f"{name}: expected a list of images, a (F, H, W, 3) array or a (F, 3, H, W) tensor, got {type(images).__name__}.")
    if len(images) == 0:
        raise ValueError(f"{name} is empty: give at least one pose image.")
    tensors = [image_to_tensor(im, f"{name}[{i}]") for i, im in enumerate(images)]
    sizes = {tuple(t.shape[1:]) for t in tensors}
    if len(sizes) > 1:
        raise ValueError(f"{name}: all frames must have the same size (H, W); got {sorted(sizes)}.")
    return torch.stack(tensors)


def tensor_to_pil(frames: "torch.Tensor") -> list[PIL.Image.Image]:
    """(F, 3, H, W) in [0, 1] -> list of RGB PIL images."""
    array = (frames.clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy() * 255).round().astype(np.uint8)
    return [PIL.Image.fromarray(a) for a in array]


def to_rgb_array(image: PIL.Image.Image | np.ndarray) -> np.ndarray:
    """Return ``image`` as a C-contiguous uint8 RGB array (H, W, 3).

    Raises:
        ValueError: for a PIL image that is not mode "RGB", an array that is not uint8 (H, W, 3),
            or an empty image.
    """
    if isinstance(image, PIL.Image.Image):
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


def load_rgb(image: PIL.Image.Image | np.ndarray | str | Path, name: str = "reference image") -> np.ndarray:
    """A file path, a PIL image or a uint8 array -> uint8 RGB array (H, W, 3), or a clear ``ValueError``.

    PIL modes RGB, RGBA, L, LA and P are accepted (transparency becomes black, like the training
    data's background); arrays must already be uint8 RGB (H, W, 3).
    """
    if image is None:
        raise ValueError(f"no {name} given: upload a photo of one person (PNG or JPEG).")
    if isinstance(image, (str, Path)):
        try:
            with PIL.Image.open(image) as opened:
                opened.load()
                image = opened.copy()
        except (OSError, PIL.UnidentifiedImageError) as err:
            raise ValueError(f"cannot read the {name} {str(image)!r}: {err}. Accepted: PNG, JPEG, WebP or BMP files.") from err
    if isinstance(image, PIL.Image.Image):
        if image.mode not in REFERENCE_MODES:
            raise ValueError(f"the {name} has PIL mode {image.mode!r}; accepted modes: {', '.join(REFERENCE_MODES)}. "
                             f"Convert it first, e.g. image.convert('RGB').")
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            image = PIL.Image.alpha_composite(PIL.Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
        image = image.convert("RGB")
    try:
        return to_rgb_array(image)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from err


def side_by_side(*columns: list[PIL.Image.Image]) -> list[np.ndarray]:
    """Frames of several equally long sequences (a single image repeats) placed left to right."""
    length = max(len(c) for c in columns)
    out = []
    for i in range(length):
        tiles = [np.asarray(c[min(i, len(c) - 1)].convert("RGB")) for c in columns]
        h = max(t.shape[0] for t in tiles)
        tiles = [t if t.shape[0] == h else np.asarray(PIL.Image.fromarray(t).resize((t.shape[1] * h // t.shape[0], h)))
                 for t in tiles]
        out.append(np.concatenate(tiles, axis=1))
    return out
