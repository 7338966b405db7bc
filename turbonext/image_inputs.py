"""Converting user images (PIL, numpy, torch) into model tensors, with errors that say what is accepted."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import PIL.Image
import torch

ACCEPTED = (
    "a PIL image, a numpy array (H, W, 3) uint8 in [0, 255] or float in [0, 1], "
    "or a torch tensor (3, H, W) float in [0, 1]"
)


def image_to_tensor(image, name: str = "image") -> torch.Tensor:
    """One RGB image -> float tensor (3, H, W) in [0, 1].

    PIL images of any mode are converted to RGB (an alpha channel is composited on black, matching
    the training data's black background). Arrays and tensors must already have 3 channels.
    """
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


def images_to_tensor(images, name: str = "pose_images") -> torch.Tensor:
    """A sequence of images -> float tensor (F, 3, H, W) in [0, 1].

    Accepts a list of single images (any of the types above), a numpy array (F, H, W, 3) or a
    tensor (F, 3, H, W). All frames must share one size.
    """
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


def tensor_to_pil(frames: torch.Tensor) -> list[PIL.Image.Image]:
    """(F, 3, H, W) in [0, 1] -> list of RGB PIL images."""
    array = (frames.clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy() * 255).round().astype(np.uint8)
    return [PIL.Image.fromarray(a) for a in array]
