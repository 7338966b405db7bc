"""Assembling a TurboNextPipeline from the public component repos (or local folders in their layouts).

This is where training starts: SD1.5 for the UNets, text encoder and (optionally) the encoding VAE,
an AnimateDiff motion adapter for the temporal layers, TAESD for fast decoding, LCM-LoRA for
4-step inference. The ReferenceNet starts as a copy of the base UNet.
"""

from __future__ import annotations

import copy
import os

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, DDIMScheduler, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from turbonext.loaders.hub import DEFAULT_BASE, DEFAULT_LCM_LORA, DEFAULT_MOTION_ADAPTER, DEFAULT_TINY_VAE
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.unet_motion import TurboNextUNetMotionModel


def _load(cls, name_or_path, subfolder=None, **kwargs):
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if subfolder is not None:
        kwargs["subfolder"] = subfolder
    return cls.from_pretrained(os.fspath(name_or_path), use_safetensors=True, **kwargs)


def _load_tokenizer(base, **kwargs):
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k != "torch_dtype"}
    return CLIPTokenizer.from_pretrained(os.fspath(base), subfolder="tokenizer", **kwargs)


def assemble_pipeline(
    pipeline_cls,
    base: str = DEFAULT_BASE,
    motion_adapter: str | None = DEFAULT_MOTION_ADAPTER,
    tiny_vae: str | None = DEFAULT_TINY_VAE,
    lcm_lora: str | None = DEFAULT_LCM_LORA,
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
        base: an SD1.5 repo (unet/, vae/, text_encoder/, tokenizer/, scheduler/).
        motion_adapter: an AnimateDiff ``MotionAdapter`` repo (v3 layout, or v1-5-2 with a mid block);
            ``None`` gives motion modules with fresh (random) temporal weights.
        tiny_vae: a TAESD ``AutoencoderTiny`` repo used for decoding; ``None`` decodes with the SD VAE.
        lcm_lora: an LCM-LoRA repo or folder fused into the main UNet (switches to ``LCMScheduler``);
            ``None`` skips LCM and keeps the base scheduler.
        pose_guider: a saved :class:`PoseGuider` folder; ``None`` makes a new zero-initialised one.
        reference_unet: a saved ReferenceNet folder; ``None`` copies the base UNet.
        encode_with_sd_vae: encode the reference with the SD VAE (``encoder_vae``) when decoding with TAESD.
    """
    common = dict(torch_dtype=torch_dtype, cache_dir=cache_dir, local_files_only=local_files_only)
    unet2d = _load(UNet2DConditionModel, base, "unet", revision=revision, **common)
    if reference_unet is None:
        ref_unet = copy.deepcopy(unet2d)
    else:
        ref_unet = _load(UNet2DConditionModel, reference_unet, **common)
    adapter = None
    if motion_adapter is not None:
        adapter = _load(MotionAdapter, motion_adapter, **common)
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
    if pose_guider is None:
        guider = PoseGuider(out_channels=unet2d.config.block_out_channels[0])
        if torch_dtype is not None:
            guider = guider.to(torch_dtype)
    else:
        guider = _load(PoseGuider, pose_guider, **common)
    scheduler = DDIMScheduler.from_pretrained(os.fspath(base), subfolder="scheduler", revision=revision,
                                              cache_dir=cache_dir, local_files_only=bool(local_files_only))
    pipe = pipeline_cls(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, reference_unet=ref_unet,
        pose_guider=guider, scheduler=scheduler, encoder_vae=encoder_vae,
    )
    if lcm_lora is not None:
        pipe.fuse_lcm_lora(lcm_lora, scale=lcm_lora_scale)
    return pipe
