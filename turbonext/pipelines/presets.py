"""TurboNextPipelines with random weights, built from the component presets (no download): SD1.5-size
ones time exactly like the real model (benchmarks), tiny ones run anywhere in seconds."""

from __future__ import annotations

import os
import tempfile

import torch
from diffusers import LCMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from turbonext.models.configs import SCHEDULER, SD15_TEXT_ENCODER, build_components
from turbonext.models.tiny_tokenizer import write_tiny_tokenizer
from turbonext.models.unet_motion import TurboNextUNetMotionModel
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline


def build_random_pipeline(size: str = "tiny", torch_dtype: torch.dtype = torch.float32, device="cpu", seed: int = 0,
                          tokenizer_dir: str | os.PathLike | None = None):
    """A TurboNextPipeline with random weights built from configs (no download): for speed
    measurements ("full" = SD1.5 shapes) and quick experiments ("tiny")."""
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
