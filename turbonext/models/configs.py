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
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

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
# Stable Diffusion XL (stabilityai/stable-diffusion-xl-base-1.0, unet/config.json): three levels, no attention at the
# first, 1/2/10 transformer layers per level, 2048-dim text (two encoders' hidden states side by side) and SDXL's
# added conditioning ("text_time": the pooled text embedding of text_encoder_2 and 6 size/crop time ids, 256 dims each).
SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    transformer_layers_per_block=(1, 2, 10),
    cross_attention_dim=2048,
    attention_head_dim=(5, 10, 20),
    use_linear_projection=True,
    norm_num_groups=32,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,  # 1280 pooled text + 6 time ids x 256
)
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
# guoyww/animatediff-motion-adapter-sdxl-beta: three levels as SDXL's UNet, no motion mid block.
MOTION_ADAPTER_SDXL = dict(MOTION_ADAPTER_V3, block_out_channels=(320, 640, 1280))
TAESD = dict()  # AutoencoderTiny defaults are madebyollin/taesd's config (and madebyollin/taesdxl's)
SD15_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    sample_size=512,
    scaling_factor=0.18215,
)
SDXL_VAE = dict(SD15_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)  # overflows in fp16

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
# Tiny SDXL: three levels as SDXL's (one more than tiny SD1.5's two, where SDXL has one fewer than SD1.5's four:
# adapters of one do not fit the other, as in the real repos), no attention at the first, 1/1/2 transformer layers,
# text_encoder (32) + text_encoder_2 (48) hidden states side by side (80), the pooled 48 + 6 time ids x 8 in the
# added embedding.
TINY_SDXL_TEXT_2_HIDDEN = 48
TINY_SDXL_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    transformer_layers_per_block=(1, 1, 2),
    cross_attention_dim=32 + TINY_SDXL_TEXT_2_HIDDEN,
    attention_head_dim=(2, 4, 4),
    use_linear_projection=True,
    norm_num_groups=8,
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=TINY_SDXL_TEXT_2_HIDDEN + 6 * 8,
)
TINY_MOTION_ADAPTER = dict(
    block_out_channels=(32, 64),
    motion_layers_per_block=1,
    motion_num_attention_heads=2,
    motion_norm_num_groups=8,
    motion_max_seq_length=32,
    use_motion_mid_block=False,
)
TINY_MOTION_ADAPTER_SDXL = dict(TINY_MOTION_ADAPTER, block_out_channels=(32, 64, 64))
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
# SD2.1's text encoder (OpenCLIP ViT-H) and SDXL's second one (OpenCLIP ViT-bigG, with a text projection)
SD21_TEXT_ENCODER = dict(
    hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
    max_position_embeddings=77, projection_dim=512, vocab_size=49408, hidden_act="gelu",
)
SDXL_TEXT_ENCODER_2 = dict(
    hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
    max_position_embeddings=77, projection_dim=1280, vocab_size=49408, hidden_act="gelu",
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


BACKBONES = ("sd15", "sd21", "sdxl")


def _tiny_text_config(**overrides) -> CLIPTextConfig:
    vocab, _ = tiny_clip_vocab()
    return CLIPTextConfig(**dict(TINY_TEXT_ENCODER, **overrides), vocab_size=len(vocab),
                          bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                          pad_token_id=vocab["<|endoftext|>"])


def build_backbone_components(backbone: str = "sd15", size: str = "tiny", seed: int = 0) -> dict:
    """Randomly initialised components of one Stable Diffusion backbone, ``size`` "tiny" or "full" (the real shapes):
    "sd15" (:func:`build_components`), "sd21" (1024-dim text, linear projections, per-level heads; its scheduler
    predicts v, which the caller sets) or "sdxl" (three levels, two text encoders, the "text_time" added embedding,
    an fp16-overflowing VAE with scaling factor 0.13025, the three-level motion adapter).

    Returns unet2d, motion_adapter, tiny_vae, vae, text_encoder, text_encoder_2 (SDXL only, else None), pose_guider
    (its output width is the UNet's ``conv_in`` width: 320 at full size).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full' for a backbone, got {size!r}")
    tiny = size == "tiny"
    if backbone == "sd15":
        comps = build_components(size, seed=seed)
        if comps["text_encoder"] is None:
            comps["text_encoder"] = CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER))
        return dict(comps, text_encoder_2=None)
    sdxl = backbone == "sdxl"
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**({"sd21": TINY_SD21_UNET, "sdxl": TINY_SDXL_UNET} if tiny else
                                   {"sd21": SD21_UNET, "sdxl": SDXL_UNET})[backbone])
    adapter = {("sd21", True): TINY_MOTION_ADAPTER, ("sd21", False): MOTION_ADAPTER_V3,
               ("sdxl", True): TINY_MOTION_ADAPTER_SDXL, ("sdxl", False): MOTION_ADAPTER_SDXL}[backbone, tiny]
    vae = dict(TINY_VAE if tiny else SD15_VAE)
    if sdxl:
        vae.update(SDXL_VAE if not tiny else dict(scaling_factor=0.13025, force_upcast=True))
    if tiny:
        width = TINY_SD21_TEXT_HIDDEN if backbone == "sd21" else TINY_TEXT_ENCODER["hidden_size"]
        text = _tiny_text_config(hidden_size=width, projection_dim=width)
    else:
        text = CLIPTextConfig(**(SD21_TEXT_ENCODER if backbone == "sd21" else SD15_TEXT_ENCODER))  # SDXL's 1st: ViT-L
    text_2 = None
    if sdxl:
        text_2 = CLIPTextModelWithProjection(
            _tiny_text_config(hidden_size=TINY_SDXL_TEXT_2_HIDDEN, projection_dim=TINY_SDXL_TEXT_2_HIDDEN) if tiny
            else CLIPTextConfig(**SDXL_TEXT_ENCODER_2))
    return dict(
        unet2d=unet, motion_adapter=MotionAdapter(**adapter), tiny_vae=AutoencoderTiny(**(TINY_TAESD if tiny else TAESD)),
        vae=AutoencoderKL(**vae), text_encoder=CLIPTextModel(text), text_encoder_2=text_2,
        pose_guider=PoseGuider(**dict(TINY_POSE_GUIDER if tiny else {}, out_channels=unet.config.block_out_channels[0])),
    )
