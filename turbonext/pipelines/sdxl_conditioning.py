"""SDXL's conditioning for :class:`~turbonext.pipelines.pipeline_turbonext.TurboNextPipeline`.

An SDXL UNet (``addition_embed_type="text_time"``) reads two things besides the cross-attention context:

* the context itself is both text encoders' penultimate hidden states side by side, (1, 77, 768 + 1280);
* ``added_cond_kwargs``: ``text_embeds``, the pooled and projected output of ``text_encoder_2`` (1, 1280), and
  ``time_ids``, six numbers: original size (H, W), crop top-left (y, x), target size (H, W), in pixels.

Both are computed with diffusers' own helpers, ``StableDiffusionXLPipeline.encode_prompt`` and
``StableDiffusionXLPipeline._get_add_time_ids``, called on the TurboNextPipeline (they read only its text
encoders, tokenizers and UNet). By default, as in diffusers, original and target size are the output size and
the crop is (0, 0). Both UNets get them: the ReferenceNet when it reads the reference, the denoiser at every call.

A :class:`~turbonext.streaming.session.StreamSession` passes them at every UNet call itself (the session's prompt,
the frames' size; made once per session).
"""

from __future__ import annotations

import numbers

import torch
from diffusers import StableDiffusionXLPipeline


def encode_sdxl_prompt(pipe, prompt: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``prompt`` -> (context (1, 77, D1 + D2), pooled text embedding (1, P)), as ``StableDiffusionXLPipeline``."""
    # negative_prompt="" only keeps diffusers from reading config.force_zeros_for_empty_prompt: no guidance here
    embeds, _, pooled, _ = StableDiffusionXLPipeline.encode_prompt(
        pipe, prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False, negative_prompt="")
    return embeds, pooled


def add_time_ids(pipe, height: int, width: int, original_size=None, crops_coords_top_left=(0, 0), target_size=None,
                 dtype: torch.dtype = torch.float32, projection_dim: int | None = None) -> torch.Tensor:
    """SDXL's micro-conditioning (1, 6) for an output of ``height`` x ``width`` pixels: (original H, W, crop y, x,
    target H, W); sizes default to the output size. Raises diffusers' ValueError if the UNet's added embedding
    expects another width."""
    original = tuple(int(v) for v in original_size) if original_size is not None else (height, width)
    target = tuple(int(v) for v in target_size) if target_size is not None else (height, width)
    if projection_dim is None:
        projection_dim = pipe.text_encoder_2.config.projection_dim
    crops = tuple(int(v) for v in crops_coords_top_left)
    return StableDiffusionXLPipeline._get_add_time_ids(pipe, original, crops, target,
                                                       dtype=dtype, text_encoder_projection_dim=projection_dim)


def check_size_conditioning(name: str, value) -> None:
    """``original_size`` / ``target_size`` / ``crops_coords_top_left``: None or two non-negative integers."""
    if value is None:
        return
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise ValueError(f"{name} must be two non-negative integers (height, width) in pixels, got {value!r}.")
