"""TurboNextPipelines with random weights, built from the component presets (no download): SD1.5-size
ones time exactly like the real model (benchmarks), tiny ones run anywhere in seconds. The SD2.1 and SDXL
backbones are built the same way (``backbone=``), at full size directly on the target device."""

from __future__ import annotations

import os
import tempfile

import torch
from diffusers import LCMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from turbonext.models.configs import (
    BACKBONES,
    SCHEDULER,
    SD15_TEXT_ENCODER,
    build_backbone_components,
    build_components,
)
from turbonext.models.tiny_tokenizer import write_tiny_tokenizer
from turbonext.models.unet_motion import TurboNextUNetMotionModel
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline


def build_random_pipeline(size: str = "tiny", torch_dtype: torch.dtype = torch.float32, device="cpu", seed: int = 0,
                          tokenizer_dir: str | os.PathLike | None = None, backbone: str = "sd15"):
    """A TurboNextPipeline with random weights built from configs (no download): for speed
    measurements ("full" = the real shapes) and quick experiments ("tiny"). ``backbone``: "sd15" (default), "sd21"
    (v-prediction) or "sdxl" (two text encoders, added conditioning, TAESDXL-shaped decoder, its fp16-overflowing
    VAE encoding the reference)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    if backbone != "sd15":
        return _build_backbone_pipeline(backbone, size, torch_dtype, device, seed, tokenizer_dir)
    comps = build_components(size, seed=seed)
    if comps["text_encoder"] is None:
        torch.manual_seed(seed)
        comps["text_encoder"] = CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER))
    tokenizer_dir = tokenizer_dir or tempfile.mkdtemp(prefix="turbonext-tokenizer-")
    write_tiny_tokenizer(tokenizer_dir)
    ref_unet = comps["unet2d"]
    unet = TurboNextUNetMotionModel.from_unet2d(ref_unet, comps["motion_adapter"])
    pipe = TurboNextPipeline(
        vae=comps["tiny_vae"], text_encoder=comps["text_encoder"], tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
        unet=unet, reference_unet=ref_unet, pose_guider=comps["pose_guider"], scheduler=LCMScheduler(**SCHEDULER),
        encoder_vae=comps["vae"],
    )
    pipe.to(device)
    return pipe if torch_dtype == torch.float32 else pipe.to(dtype=torch_dtype)


def _build_backbone_pipeline(backbone: str, size: str, torch_dtype: torch.dtype, device, seed: int,
                             tokenizer_dir) -> TurboNextPipeline:
    """SD2.1 or SDXL with random weights; at full size the weights are made on ``device`` itself (an SDXL pipeline
    is ~6 B parameters: building it on the host first would take minutes and ~25 GB)."""
    with torch.device(device if size == "full" else "cpu"):
        comps = build_backbone_components(backbone, size, seed=seed)
        unet = TurboNextUNetMotionModel.from_unet2d(comps["unet2d"], comps["motion_adapter"])
    tokenizer_dir = tokenizer_dir or tempfile.mkdtemp(prefix="turbonext-tokenizer-")
    write_tiny_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    scheduler = dict(SCHEDULER, prediction_type="v_prediction", timestep_spacing="leading") if backbone == "sd21" \
        else dict(SCHEDULER, timestep_spacing="leading")
    sdxl = {} if comps["text_encoder_2"] is None else dict(text_encoder_2=comps["text_encoder_2"], tokenizer_2=tokenizer)
    pipe = TurboNextPipeline(
        vae=comps["tiny_vae"], text_encoder=comps["text_encoder"], tokenizer=tokenizer, unet=unet,
        reference_unet=comps["unet2d"], pose_guider=comps["pose_guider"], scheduler=LCMScheduler(**scheduler),
        encoder_vae=comps["vae"], **sdxl,
    )
    pipe.to(device)
    return pipe if torch_dtype == torch.float32 else pipe.to(dtype=torch_dtype)
