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

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import PIL.Image
import PIL.ImageOps


if TYPE_CHECKING:
    import torch

REFERENCE_MODES = ("RGB", "RGBA", "L", "LA", "P")
# The largest image accepted, in pixels (64 MP: a 50 MP phone photo fits). A file above it is refused from its
# header, before any pixel is decoded (a 400 KB PNG can declare 12000 x 12000 pixels: 2 GB once decoded),
# except a JPEG, which is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's draft mode) to fit under it.
MAX_IMAGE_PIXELS = 64_000_000
ACCEPTED = (
    "a PIL image, a numpy array (H, W, 3) uint8 in [0, 255] or float in [0, 1], "
    "or a torch tensor (3, H, W) float in [0, 1]"
)


def _is_tensor(value) -> bool:
    """A torch tensor (checked without importing torch)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "shape") and hasattr(value, "dtype")


def flatten_alpha(image: PIL.Image.Image) -> PIL.Image.Image:
    """An RGB version of ``image``; transparency (modes RGBA, LA, P and the like) is composited on black, the
    training data's background. 16-bit and float grey images are scaled to 8 bits first; a mode PIL cannot
    convert is a ``ValueError``."""
    image = _reference_mode(image, "the image")
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        image = PIL.Image.alpha_composite(PIL.Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return image.convert("RGB")


def check_size(height: int, width: int, name: str = "image") -> tuple[int, int]:
    """(height, width) if the image is neither empty nor over :data:`MAX_IMAGE_PIXELS`, else a ``ValueError``."""
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} is empty ({width}x{height} pixels).")
    if height * width > MAX_IMAGE_PIXELS:
        raise ValueError(f"{name} is too large: {width}x{height} pixels ({height * width / 1e6:.0f} MP); the limit is "
                         f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP. Downscale it first (the model works at 512x512 or less).")
    return height, width


def check_image(image, name: str = "image") -> tuple[int, int]:
    """Validate one image without converting it; returns its (H, W) or raises a ``ValueError`` saying what
    is accepted: :data:`ACCEPTED`. Empty images, images over :data:`MAX_IMAGE_PIXELS` and float arrays or
    tensors holding NaN or infinity are refused too."""
    if isinstance(image, PIL.Image.Image):
        return check_size(image.height, image.width, name)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{name}: expected a numpy array of shape (H, W, 3), got {image.shape}. Accepted: {ACCEPTED}.")
        if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"{name}: numpy dtype {image.dtype} is not supported. Accepted: {ACCEPTED}.")
        size = check_size(int(image.shape[0]), int(image.shape[1]), name)
        if image.dtype != np.uint8 and not np.isfinite(image).all():
            raise ValueError(f"{name}: the float array holds NaN or infinity. Accepted: {ACCEPTED}.")
        return size
    if _is_tensor(image):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"{name}: expected a tensor of shape (3, H, W), got {tuple(image.shape)}. Accepted: {ACCEPTED}.")
        size = check_size(int(image.shape[1]), int(image.shape[2]), name)
        if image.is_floating_point() and not bool(image.isfinite().all()):
            raise ValueError(f"{name}: the tensor holds NaN or infinity. Accepted: {ACCEPTED}.")
        return size
    raise ValueError(f"{name}: unsupported type {type(image).__name__}. Accepted: {ACCEPTED}.")


def _as_frame_list(images, name: str) -> list:
    """``images`` as a list of single images (a 4-D array or tensor is split along its first axis)."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)  # an empty (0, H, W, 3) array becomes [] and is reported by the caller
    if _is_tensor(images) and images.ndim == 4:
        if images.shape[1] != 3:
            raise ValueError(f"{name}: expected a tensor of shape (F, 3, H, W), got {tuple(images.shape)}.")
        return list(images)
    if isinstance(images, (PIL.Image.Image, np.ndarray)) or _is_tensor(images):
        return [images]
    if not isinstance(images, Sequence) or isinstance(images, str):
        raise ValueError(f"{name}: expected a list of images, a (F, H, W, 3) array or a (F, 3, H, W) tensor, "
                         f"got {type(images).__name__}.")
    return list(images)


def check_images(images, name: str = "pose_images") -> tuple[int, int, int]:
    """Validate a sequence of images without converting it; returns (F, H, W).

    Accepts a list of single images (any of the :data:`ACCEPTED` types), a numpy array (F, H, W, 3) or a
    tensor (F, 3, H, W); all frames must share one size.
    """
    frames = _as_frame_list(images, name)
    if not frames:
        raise ValueError(f"{name} is empty: give at least one image.")
    sizes = {check_image(im, f"{name}[{i}]") for i, im in enumerate(frames)}
    if len(sizes) > 1:
        raise ValueError(f"{name}: all frames must have the same size (H, W); got {sorted(sizes)}.")
    return (len(frames), *sizes.pop())


def image_to_tensor(image, name: str = "image") -> "torch.Tensor":
    """One RGB image -> float tensor (3, H, W) in [0, 1].

    PIL images of any mode are converted to RGB (:func:`flatten_alpha`). Arrays and tensors must already
    have 3 channels; uint8 ones are scaled from [0, 255].
    """
    import torch

    check_image(image, name)
    if isinstance(image, PIL.Image.Image):
        array = np.asarray(flatten_alpha(image), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if isinstance(image, np.ndarray):
        array = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()
    return image.float() if image.is_floating_point() else image.float() / 255.0


def images_to_tensor(images, name: str = "pose_images") -> "torch.Tensor":
    """A sequence of images (see :func:`check_images`) -> float tensor (F, 3, H, W) in [0, 1]."""
    import torch

    check_images(images, name)
    if _is_tensor(images) and images.ndim == 4:
        return images.float() if images.is_floating_point() else images.float() / 255.0
    return torch.stack([image_to_tensor(im, f"{name}[{i}]") for i, im in enumerate(_as_frame_list(images, name))])


def resize_keeping_aspect(image: "torch.Tensor", height: int, width: int, mode: str = "bicubic") -> "torch.Tensor":
    """(3, h, w) float image -> (3, height, width): padded black (centred) to the target's aspect ratio, then
    resized (``mode``: torch's interpolation, bicubic for photos, bilinear for pose maps). Never stretched: a
    figure keeps its proportions (the training data are square crops padded black)."""
    import torch

    h, w = image.shape[-2:]
    if (h, w) == (height, width):
        return image
    if h * width != w * height:  # another aspect ratio: pad the short side
        new_h, new_w = max(h, round(w * height / width)), max(w, round(h * width / height))
        top, left = (new_h - h) // 2, (new_w - w) // 2
        image = torch.nn.functional.pad(image, (left, new_w - w - left, top, new_h - h - top))
    return torch.nn.functional.interpolate(image[None], size=(height, width), mode=mode,
                                           align_corners=False)[0].clamp(0, 1)


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


def _reference_mode(image: PIL.Image.Image, label: str) -> PIL.Image.Image:
    """A decoded file's image in one of :data:`REFERENCE_MODES`: 16-bit and float grey scaled to 8 bits,
    CMYK, YCbCr, LAB, HSV, 1-bit and the other PIL modes converted (their alpha, if any, kept)."""
    mode = image.mode
    if mode in REFERENCE_MODES:
        return image
    if mode.startswith("I") or mode == "F":  # 16/32-bit integer or float grey
        array = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(array.max()) if array.size else 0.0
        if mode == "F" and peak <= 1.0:
            scale = 255.0
        elif mode.startswith("I;16") or peak > 255.0:
            scale = 255.0 / 65535.0
        else:
            scale = 1.0
        return PIL.Image.fromarray(np.clip(array * scale, 0, 255).round().astype(np.uint8), "L")
    try:
        if mode == "La":  # premultiplied alpha: PIL converts it to LA only
            image = image.convert("LA")
        return image.convert("RGBA" if "A" in mode or "a" in mode else "RGB")
    except (ValueError, OSError) as err:
        raise ValueError(f"{label} has colour mode {mode!r}, which cannot be converted to RGB ({err}). "
                         "Save it as an 8-bit RGB PNG or JPEG.") from err


def _read_image_file(path: str | Path, name: str) -> PIL.Image.Image:
    """Decode an image file, refusing one over :data:`MAX_IMAGE_PIXELS` from its header (a JPEG is decoded at a
    reduced scale instead when that fits), applying its EXIF orientation; any decoding failure is a ``ValueError``."""
    label = f"the {name} {str(path)!r}"
    accepted = "Accepted: PNG, JPEG, WebP or BMP files."
    try:
        with warnings.catch_warnings():  # the size is checked below, with a clearer message than PIL's warning
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            opened = PIL.Image.open(path)
    except PIL.Image.DecompressionBombError as err:  # over twice PIL's own limit: refused by PIL from the header
        raise ValueError(f"{label} is too large ({err}); the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP. "
                         "Downscale it first.") from err
    except Exception as err:  # whatever a malformed file makes PIL raise, it is a file we cannot read
        raise ValueError(f"cannot read {label}: {err}. {accepted}") from err
    with opened:
        try:
            width, height = opened.size
            if opened.format == "JPEG" and width * height > MAX_IMAGE_PIXELS:
                scale = 1
                while scale < 8 and width * height > MAX_IMAGE_PIXELS * scale * scale:
                    scale *= 2
                opened.draft(opened.mode, (max(1, width // scale), max(1, height // scale)))
            width, height = opened.size
        except Exception as err:
            raise ValueError(f"cannot read {label}: {err}. {accepted}") from err
        check_size(height, width, label)  # before a single pixel is decoded
        try:
            opened.load()
            image = PIL.ImageOps.exif_transpose(opened)  # a new image, turned as the camera's EXIF tag says
        except Exception as err:  # truncated data, bad EXIF, decoder errors of any kind
            raise ValueError(f"cannot read {label}: {err}. {accepted}") from err
    return _reference_mode(image, label)


def load_rgb(image: PIL.Image.Image | np.ndarray | str | Path, name: str = "reference image") -> np.ndarray:
    """A file path, a PIL image or a uint8 array -> uint8 RGB array (H, W, 3), or a clear ``ValueError``.

    Files: any format and colour mode PIL decodes (PNG, JPEG, WebP, BMP...; 16-bit, CMYK and the like are
    converted), turned as their EXIF orientation says; a file that cannot be decoded (empty, truncated, not an
    image) or that is larger than :data:`MAX_IMAGE_PIXELS` is refused from its header, before its pixels are
    decoded (a large JPEG is decoded at a reduced scale instead, when that fits). PIL images: modes RGB,
    RGBA, L, LA and P (EXIF orientation applied). Transparency becomes black, like the training data's
    background. Arrays must already be uint8 RGB (H, W, 3).
    """
    if image is None:
        raise ValueError(f"no {name} given: upload a photo of one person (PNG or JPEG).")
    if isinstance(image, (str, Path)):
        image = _read_image_file(image, name)
    elif isinstance(image, PIL.Image.Image):
        check_size(image.height, image.width, f"the {name}")  # before a lazily opened image is decoded
        if image.mode not in REFERENCE_MODES:
            raise ValueError(f"the {name} has PIL mode {image.mode!r}; accepted modes: {', '.join(REFERENCE_MODES)}. "
                             f"Convert it first, e.g. image.convert('RGB').")
        try:
            image = PIL.ImageOps.exif_transpose(image)
        except Exception as err:  # a lazily opened image decodes here
            raise ValueError(f"cannot read the {name}: {err}.") from err
    if isinstance(image, PIL.Image.Image):
        image = flatten_alpha(image)
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
