"""Tiny components saved in the folder layouts of the real Hub repos (SD1.5, SD2.1, SDXL, AnimateDiff motion
adapters, TAESD/TAESDXL), so that the real loading code is tested offline on them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from diffusers import DDIMScheduler, EulerDiscreteScheduler, UNet2DConditionModel
from diffusers import __version__ as diffusers_version
from transformers import CLIPTextConfig, CLIPTextModel

from turbonext.models.configs import (
    SCHEDULER,
    TINY_SD21_TEXT_HIDDEN,
    TINY_SD21_UNET,
    build_backbone_components,
    build_components,
)
from turbonext.models.tiny_tokenizer import write_tiny_tokenizer


def write_tiny_hub_layout(root: str | os.PathLike, seed: int = 0, size: str = "tiny") -> dict[str, str]:
    """Save tiny components in the folder layouts of the real Hub repos; returns {role: folder}.

    Roles: base (stable-diffusion-v1-5 layout: unet/ vae/ text_encoder/ tokenizer/ scheduler/),
    base_sd21 (stable-diffusion-2-1 layout: linear projections, per-level heads, a wider text encoder, a
    v-prediction scheduler), motion_adapter (v3 layout), motion_adapter_v2 (with a motion mid block),
    tiny_vae (taesd layout), and SDXL's (tiny whatever ``size``; :func:`write_tiny_sdxl_layout`): base_sdxl,
    motion_adapter_sdxl, tiny_vae_sdxl.
    """
    root = Path(root)
    comps = build_components(size, seed=seed)
    base = root / "stable-diffusion-v1-5"
    comps["unet2d"].save_pretrained(base / "unet")
    comps["vae"].save_pretrained(base / "vae")
    comps["text_encoder"].save_pretrained(base / "text_encoder")
    write_tiny_tokenizer(base / "tokenizer")
    DDIMScheduler(**SCHEDULER).save_pretrained(base / "scheduler")
    (base / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    sd21 = root / "stable-diffusion-2-1"
    UNet2DConditionModel(**(TINY_SD21_UNET if size == "tiny" else dict(comps["unet2d"].config, cross_attention_dim=48,
                                                                        use_linear_projection=True))
                         ).save_pretrained(sd21 / "unet")
    comps["vae"].save_pretrained(sd21 / "vae")
    text = comps["text_encoder"].config.to_dict()
    text.update(hidden_size=TINY_SD21_TEXT_HIDDEN, projection_dim=TINY_SD21_TEXT_HIDDEN)
    CLIPTextModel(CLIPTextConfig(**text)).save_pretrained(sd21 / "text_encoder")
    write_tiny_tokenizer(sd21 / "tokenizer")
    DDIMScheduler(**dict(SCHEDULER, prediction_type="v_prediction", timestep_spacing="leading")).save_pretrained(
        sd21 / "scheduler")
    (sd21 / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    comps["motion_adapter"].save_pretrained(root / "animatediff-motion-adapter-v1-5-3")
    v2 = build_components(size, seed=seed + 1, motion_mid_block=True)["motion_adapter"]
    v2.save_pretrained(root / "animatediff-motion-adapter-v1-5-2")
    comps["tiny_vae"].save_pretrained(root / "taesd")
    config = json.loads((root / "taesd" / "config.json").read_text())
    config.pop("block_out_channels", None)  # AutoencoderTiny writes it but does not take it (madebyollin/taesd has none)
    (root / "taesd" / "config.json").write_text(json.dumps(config, indent=2))
    return {
        **write_tiny_sdxl_layout(root, seed=seed),
        "base": str(base),
        "base_sd21": str(sd21),
        "motion_adapter": str(root / "animatediff-motion-adapter-v1-5-3"),
        "motion_adapter_v2": str(root / "animatediff-motion-adapter-v1-5-2"),
        "tiny_vae": str(root / "taesd"),
    }


def write_tiny_sdxl_layout(root: str | os.PathLike, seed: int = 0) -> dict[str, str]:
    """A tiny SDXL base in stabilityai/stable-diffusion-xl-base-1.0's layout (unet/ vae/ text_encoder/
    text_encoder_2/ tokenizer/ tokenizer_2/ scheduler/, model_index.json naming StableDiffusionXLPipeline, so
    diffusers' own SDXL pipeline loads it too), a motion adapter in guoyww/animatediff-motion-adapter-sdxl-beta's
    and a decoder in madebyollin/taesdxl's; returns {"base_sdxl", "motion_adapter_sdxl", "tiny_vae_sdxl": folder}."""
    root = Path(root)
    comps = build_backbone_components("sdxl", "tiny", seed=seed + 2)
    base = root / "stable-diffusion-xl-base-1.0"
    for name in ("unet2d", "vae", "text_encoder", "text_encoder_2"):
        comps[name].save_pretrained(base / ("unet" if name == "unet2d" else name))
    write_tiny_tokenizer(base / "tokenizer")
    write_tiny_tokenizer(base / "tokenizer_2")
    EulerDiscreteScheduler(**{k: v for k, v in SCHEDULER.items() if k not in ("clip_sample", "set_alpha_to_one")},
                           timestep_spacing="leading").save_pretrained(base / "scheduler")
    config = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
    # the real file also carries these (read by schedulers built from it, e.g. DDIM, LCM)
    config.update(clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True, sample_max_value=1.0)
    (base / "scheduler" / "scheduler_config.json").write_text(json.dumps(config, indent=2))
    (base / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": diffusers_version,
        "force_zeros_for_empty_prompt": True, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}, indent=2))
    adapter = root / "animatediff-motion-adapter-sdxl-beta"
    comps["motion_adapter"].save_pretrained(adapter)
    taesdxl = root / "taesdxl"
    comps["tiny_vae"].save_pretrained(taesdxl)
    config = json.loads((taesdxl / "config.json").read_text())
    config.pop("block_out_channels", None)  # as for taesd: AutoencoderTiny writes it but does not take it
    (taesdxl / "config.json").write_text(json.dumps(config, indent=2))
    return {"base_sdxl": str(base), "motion_adapter_sdxl": str(adapter), "tiny_vae_sdxl": str(taesdxl)}
