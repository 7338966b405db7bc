"""Tiny components saved in the folder layouts of the real Hub repos (SD1.5, AnimateDiff motion adapters,
TAESD), so that the real loading code is tested offline on them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from diffusers import DDIMScheduler

from turbonext.models.configs import SCHEDULER, build_components
from turbonext.models.tiny_tokenizer import write_tiny_tokenizer


def write_tiny_hub_layout(root: str | os.PathLike, seed: int = 0, size: str = "tiny") -> dict[str, str]:
    """Save tiny components in the folder layouts of the real Hub repos; returns {role: folder}.

    Roles: base (stable-diffusion-v1-5 layout: unet/ vae/ text_encoder/ tokenizer/ scheduler/),
    motion_adapter (v3 layout), motion_adapter_v2 (with a motion mid block), tiny_vae (taesd layout).
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
    comps["motion_adapter"].save_pretrained(root / "animatediff-motion-adapter-v1-5-3")
    v2 = build_components(size, seed=seed + 1, motion_mid_block=True)["motion_adapter"]
    v2.save_pretrained(root / "animatediff-motion-adapter-v1-5-2")
    comps["tiny_vae"].save_pretrained(root / "taesd")
    config = json.loads((root / "taesd" / "config.json").read_text())
    config.pop("block_out_channels", None)  # AutoencoderTiny writes it but does not take it (madebyollin/taesd has none)
    (root / "taesd" / "config.json").write_text(json.dumps(config, indent=2))
    return {
        "base": str(base),
        "motion_adapter": str(root / "animatediff-motion-adapter-v1-5-3"),
        "motion_adapter_v2": str(root / "animatediff-motion-adapter-v1-5-2"),
        "tiny_vae": str(root / "taesd"),
    }
