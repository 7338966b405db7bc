"""Configurations of the model components: full-size SD1.5 ones and tiny ones of the same classes.

Full-size components built from these configs with random weights time exactly like the real
ones (benchmarks). Tiny ones (tests, ``--tiny`` benchmarks) and the demo ones (the embedded
synthetic demo model) exercise the same code paths in seconds on a CPU.
:func:`turbonext.loaders.hub_layouts.write_tiny_hub_layout` saves tiny components in the folder
layouts of the real Hub repos, so the real loading code can be tested offline.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from turbonext.models.pose_guider import PoseGuider
from turbonext.models.tiny_tokenizer import tiny_clip_vocab


# Stable Diffusion 1.5 UNet (stable-diffusion-v1-5/stable-diffusion-v1-5, unet/config.json).
SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
# Stable Diffusion 2.1 (stabilityai/stable-diffusion-2-1, unet/config.json): 1024-dim text (OpenCLIP ViT-H),
# linear attention projections, per-level head counts; its scheduler predicts v.
SD21_UNET = dict(SD15_UNET, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
                 sample_size=96)
# guoyww/animatediff-motion-adapter-v1-5-3 (v3: no motion mid block); v1-5-2 has one.
MOTION_ADAPTER_V3 = dict(
    block_out_channels=(320, 640, 1280, 1280),
    motion_layers_per_block=2,
    motion_num_attention_heads=8,
    motion_norm_num_groups=32,
    motion_max_seq_length=32,
    use_motion_mid_block=False,
)
MOTION_ADAPTER_V2 = dict(MOTION_ADAPTER_V3, use_motion_mid_block=True)
TAESD = dict()  # AutoencoderTiny defaults are madebyollin/taesd's config
SD15_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    sample_size=512,
    scaling_factor=0.18215,
)

# Tiny components of the same classes. Four VAE blocks keep the real 8x spatial factor.
TINY_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    cross_attention_dim=32,
    attention_head_dim=4,
    norm_num_groups=8,
)
TINY_SD21_UNET = dict(TINY_UNET, cross_attention_dim=48, attention_head_dim=(2, 4), use_linear_projection=True)
TINY_SD21_TEXT_HIDDEN = 48  # its text encoder's width (SD2.1's is 1024, SD1.5's 768)
TINY_MOTION_ADAPTER = dict(
    block_out_channels=(32, 64),
    motion_layers_per_block=1,
    motion_num_attention_heads=2,
    motion_norm_num_groups=8,
    motion_max_seq_length=32,
    use_motion_mid_block=False,
)
TINY_TAESD = dict(
    encoder_block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(8, 8, 8, 8),
    num_encoder_blocks=(1, 1, 1, 1),
    num_decoder_blocks=(1, 1, 1, 1),
)
TINY_VAE = dict(
    block_out_channels=(8, 8, 8, 8),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
    scaling_factor=0.18215,
)
TINY_TEXT_ENCODER = dict(
    hidden_size=32,
    intermediate_size=37,
    num_attention_heads=4,
    num_hidden_layers=2,
    max_position_embeddings=77,
    projection_dim=32,
)
TINY_POSE_GUIDER = dict(block_out_channels=(8, 16, 16), out_channels=32)
# The embedded demo model (trained from scratch on the synthetic benchmark at 256 px, 32x32 latents):
# no attention at the 32x32 level (cheap on a CPU), spatial + reference + temporal attention at 16 and 8.
DEMO_UNET = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(32, 64, 128),
    layers_per_block=1,
    cross_attention_dim=32,
    attention_head_dim=4,
    norm_num_groups=16,
)
DEMO_MOTION_ADAPTER = dict(
    block_out_channels=(32, 64, 128),
    motion_layers_per_block=1,
    motion_num_attention_heads=4,
    motion_norm_num_groups=16,
    motion_max_seq_length=32,
    use_motion_mid_block=False,
)
DEMO_POSE_GUIDER = dict(block_out_channels=(16, 32, 64), out_channels=32)
PRESETS = {
    "tiny": dict(unet=TINY_UNET, adapter=TINY_MOTION_ADAPTER, tiny_vae=TINY_TAESD, vae=TINY_VAE, guider=TINY_POSE_GUIDER),
    "demo": dict(unet=DEMO_UNET, adapter=DEMO_MOTION_ADAPTER, tiny_vae=TINY_TAESD, vae=TINY_VAE, guider=DEMO_POSE_GUIDER),
    "full": dict(unet=SD15_UNET, adapter=MOTION_ADAPTER_V3, tiny_vae=TAESD, vae=SD15_VAE, guider={}),
}
SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)

SD15_TEXT_ENCODER = dict(
    hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
    max_position_embeddings=77, projection_dim=768, vocab_size=49408, hidden_act="quick_gelu",
)


def build_components(size: str = "tiny", seed: int = 0, motion_mid_block: bool = False) -> dict:
    """Randomly initialised SD1.5-style components: ``size`` is "tiny", "demo" or "full" (SD1.5 shapes).

    Returns unet2d, motion_adapter, tiny_vae, vae (AutoencoderKL), text_encoder (tiny only, else None)
    and pose_guider.
    """
    if size not in PRESETS:
        raise ValueError(f"size must be one of {sorted(PRESETS)}, got {size!r}")
    preset = PRESETS[size]
    torch.manual_seed(seed)
    out = dict(
        unet2d=UNet2DConditionModel(**preset["unet"]),
        motion_adapter=MotionAdapter(**dict(preset["adapter"], use_motion_mid_block=motion_mid_block)),
        tiny_vae=AutoencoderTiny(**preset["tiny_vae"]),
        vae=AutoencoderKL(**preset["vae"]),
        pose_guider=PoseGuider(**preset["guider"]),
        text_encoder=None,
    )
    if size != "full":
        vocab, _ = tiny_clip_vocab()
        cfg = CLIPTextConfig(
            **TINY_TEXT_ENCODER, vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
        )
        out["text_encoder"] = CLIPTextModel(cfg)
    return out
