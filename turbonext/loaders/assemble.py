"""Assembling a TurboNextPipeline from the public component repos (or local folders in their layouts).

This is where training starts: SD1.5 for the UNets, text encoder and (optionally) the encoding VAE,
an AnimateDiff motion adapter for the temporal layers, TAESD for fast decoding, LCM-LoRA for
4-step inference. The ReferenceNet starts as a copy of the base UNet.

The base may also be SD2.1 (v-prediction, 1024-dim text: nothing else changes) or SDXL (its UNet has the
"text_time" added embedding; two text encoders and tokenizers; AnimateDiff's three-level SDXL adapter, TAESDXL
and SDXL's LCM-LoRA are then the defaults). A motion adapter or pose guider made for another backbone is refused
with a ValueError that says which one fits.
"""

from __future__ import annotations

import copy
import os

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, DDIMScheduler, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from turbonext.loaders.hub import (
    BACKBONE_DEFAULT,
    DEFAULT_BASE,
    DEFAULT_LCM_LORA,
    DEFAULT_MOTION_ADAPTER,
    DEFAULT_SDXL_LCM_LORA,
    DEFAULT_SDXL_MOTION_ADAPTER,
    DEFAULT_SDXL_TINY_VAE,
    DEFAULT_TINY_VAE,
)
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.unet_motion import TurboNextUNetMotionModel


def _load(cls, name_or_path, subfolder=None, **kwargs):
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if subfolder is not None:
        kwargs["subfolder"] = subfolder
    return cls.from_pretrained(os.fspath(name_or_path), use_safetensors=True, **kwargs)


def _load_tokenizer(base, subfolder: str = "tokenizer", **kwargs):
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k != "torch_dtype"}
    return CLIPTokenizer.from_pretrained(os.fspath(base), subfolder=subfolder, **kwargs)


def _backbone_defaults(sdxl: bool, motion_adapter, tiny_vae, lcm_lora) -> tuple:
    """Arguments left at ``BACKBONE_DEFAULT`` -> the backbone's own repos (SD1.5's, or SDXL's)."""
    defaults = ((DEFAULT_SDXL_MOTION_ADAPTER, DEFAULT_SDXL_TINY_VAE, DEFAULT_SDXL_LCM_LORA) if sdxl else
                (DEFAULT_MOTION_ADAPTER, DEFAULT_TINY_VAE, DEFAULT_LCM_LORA))
    return tuple(d if v == BACKBONE_DEFAULT else v for v, d in zip((motion_adapter, tiny_vae, lcm_lora), defaults))


def _check_backbone(unet2d: UNet2DConditionModel, base) -> bool:
    """Whether the base is SDXL (its UNet takes the "text_time" added conditioning); other addition embeddings
    are refused."""
    kind = unet2d.config.get("addition_embed_type")
    if kind not in (None, "text_time"):
        raise ValueError(f"the base UNet of {os.fspath(base)} has addition_embed_type={kind!r}: turbonext builds on "
                         "SD1.5/SD2.1 UNets (none) and SDXL's ('text_time') only.")
    return kind == "text_time"


def _check_adapter(adapter: MotionAdapter, unet2d: UNet2DConditionModel, name, base, sdxl: bool) -> None:
    """A motion adapter made for another backbone (e.g. an SD1.5 one on SDXL) -> a ValueError naming the right one."""
    def per_level(value, levels):
        return tuple(value) if isinstance(value, (list, tuple)) else (value,) * levels

    ours = tuple(unet2d.config.block_out_channels)
    theirs = tuple(adapter.config.block_out_channels)
    layers = per_level(unet2d.config.layers_per_block, len(ours))
    their_layers = per_level(adapter.config.motion_layers_per_block, len(theirs))
    if ours != theirs or layers != their_layers:
        fits = (f"SDXL bases take {DEFAULT_SDXL_MOTION_ADAPTER}" if sdxl else
                f"SD1.5/SD2.1 bases take {DEFAULT_MOTION_ADAPTER} (or v1-5-2)")
        raise ValueError(
            f"the motion adapter {os.fspath(name)} was made for a UNet with block_out_channels {theirs} and "
            f"{their_layers} layers per level, but the base UNet of {os.fspath(base)} "
            f"({'SDXL' if sdxl else 'SD1.5/SD2.1'}) has {ours} and {layers}: {fits}."
        )


def assemble_pipeline(
    pipeline_cls,
    base: str = DEFAULT_BASE,
    motion_adapter: str | None = BACKBONE_DEFAULT,
    tiny_vae: str | None = BACKBONE_DEFAULT,
    lcm_lora: str | None = BACKBONE_DEFAULT,
    pose_guider: str | None = None,
    reference_unet: str | None = None,
    encode_with_sd_vae: bool = True,
    torch_dtype: torch.dtype | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool | None = None,
    lcm_lora_scale: float = 1.0,
):
    """Build a pipeline from component repos: Hub ids or local folders in the same layouts.

    Args:
        base: an SD1.5 repo (unet/, vae/, text_encoder/, tokenizer/, scheduler/), an SD2.1 one (same layout), or
            an SDXL one (stabilityai/stable-diffusion-xl-base-1.0's layout: also text_encoder_2/, tokenizer_2/).
        motion_adapter: an AnimateDiff ``MotionAdapter`` repo (v3 layout, or v1-5-2 with a mid block; for SDXL
            guoyww/animatediff-motion-adapter-sdxl-beta's); ``None`` gives motion modules with fresh (random)
            temporal weights. "default": the backbone's (v1-5-3, or sdxl-beta).
        tiny_vae: a TAESD ``AutoencoderTiny`` repo used for decoding (madebyollin/taesd, or taesdxl for SDXL by
            default); ``None`` decodes with the SD VAE.
        lcm_lora: an LCM-LoRA repo or folder fused into the main UNet (switches to ``LCMScheduler``; lcm-lora-sdv1-5,
            or lcm-lora-sdxl by default); ``None`` skips LCM and keeps the base scheduler.
        pose_guider: a saved :class:`PoseGuider` folder; ``None`` makes a new zero-initialised one.
        reference_unet: a saved ReferenceNet folder; ``None`` copies the base UNet.
        encode_with_sd_vae: encode the reference with the SD VAE (``encoder_vae``) when decoding with TAESD.
    """
    common = dict(torch_dtype=torch_dtype, cache_dir=cache_dir, local_files_only=local_files_only)
    unet2d = _load(UNet2DConditionModel, base, "unet", revision=revision, **common)
    sdxl = _check_backbone(unet2d, base)
    motion_adapter, tiny_vae, lcm_lora = _backbone_defaults(sdxl, motion_adapter, tiny_vae, lcm_lora)
    if reference_unet is None:
        ref_unet = copy.deepcopy(unet2d)
    else:
        ref_unet = _load(UNet2DConditionModel, reference_unet, **common)
    adapter = None
    if motion_adapter is not None:
        adapter = _load(MotionAdapter, motion_adapter, **common)
        _check_adapter(adapter, unet2d, motion_adapter, base, sdxl)
    else:
        adapter = MotionAdapter(block_out_channels=unet2d.config.block_out_channels,
                      motion_layers_per_block=unet2d.config.layers_per_block, use_motion_mid_block=False)
    unet = TurboNextUNetMotionModel.from_unet2d(unet2d, adapter)
    if torch_dtype is not None:
        unet = unet.to(torch_dtype)
    sd_vae = _load(AutoencoderKL, base, "vae", revision=revision, **common)
    vae, encoder_vae = sd_vae, None
    if tiny_vae is not None:
        vae = _load(AutoencoderTiny, tiny_vae, **common)
        encoder_vae = sd_vae if encode_with_sd_vae else None
    text_encoder = _load(CLIPTextModel, base, "text_encoder", revision=revision, **common)
    tokenizer = _load_tokenizer(base, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    sdxl_text = {}
    if sdxl:  # the second text encoder: its penultimate hidden states join the first's, its pooled output is text_embeds
        sdxl_text = dict(
            text_encoder_2=_load(CLIPTextModelWithProjection, base, "text_encoder_2", revision=revision, **common),
            tokenizer_2=_load_tokenizer(base, "tokenizer_2", revision=revision, cache_dir=cache_dir,
                                        local_files_only=local_files_only))
    if pose_guider is None:
        guider = PoseGuider(out_channels=unet2d.config.block_out_channels[0])
        if torch_dtype is not None:
            guider = guider.to(torch_dtype)
    else:
        guider = _load(PoseGuider, pose_guider, **common)
        if guider.config.out_channels != unet2d.config.block_out_channels[0]:
            raise ValueError(f"the pose guider {os.fspath(pose_guider)} makes {guider.config.out_channels}-channel "
                             f"features, but the base UNet's conv_in has {unet2d.config.block_out_channels[0]}.")
    scheduler = DDIMScheduler.from_pretrained(os.fspath(base), subfolder="scheduler", revision=revision,
                                              cache_dir=cache_dir, local_files_only=bool(local_files_only))
    pipe = pipeline_cls(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, reference_unet=ref_unet,
        pose_guider=guider, scheduler=scheduler, encoder_vae=encoder_vae, **sdxl_text,
    )
    if lcm_lora is not None:
        pipe.fuse_lcm_lora(lcm_lora, scale=lcm_lora_scale)
    return pipe
