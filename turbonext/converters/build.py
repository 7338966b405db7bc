"""Converting a checkpoint family into a TurboNextPipeline folder (safetensors, configs, a model card).

:func:`architecture_configs` says what each family's models are (full size by default), :func:`build_models`
builds them (empty, on the meta device, or with random weights for benchmarks), and :func:`convert_checkpoint`
maps every key of the family's files onto them, refuses anything that does not map exactly, assembles the
pipeline with the options the family needs (image-prompt conditioning, its pose guider layout, per-frame
motion GroupNorm, its scheduler and sampler, unconditional rows that skip the reference) and saves it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, AutoencoderTiny, DDIMScheduler, LCMScheduler, MotionAdapter, UNet2DConditionModel
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from turbonext.converters.checkpoint_files import fetch_files, load_state_dict
from turbonext.converters.key_mapping import MappingReport, map_state_dict, missing_keys
from turbonext.converters.sources import DEFAULT_IMAGE_ENCODER, DEFAULT_VAE, CheckpointSource, get_source
from turbonext.loaders.hub import is_repo_id
from turbonext.models.configs import MOTION_ADAPTER_V2, SD15_UNET, SD15_VAE, TAESD, TINY_TAESD, TINY_VAE
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.unet_motion import TurboNextUNetMotionModel
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline


DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}


class ConversionError(ValueError):
    """The checkpoint's keys do not map exactly onto the architecture (the report says which)."""

    def __init__(self, report: MappingReport):
        super().__init__("the checkpoint does not match the architecture:\n" + report.format())
        self.report = report


@dataclass
class Architecture:
    """The configs of one family's models: 2D UNet (ReferenceNet and the denoiser's spatial part), motion
    modules (a ``MotionAdapter`` config) and pose guider widths."""

    unet2d: dict
    motion: dict
    pose_guider_channels: tuple[int, ...]


def architecture_configs(source: CheckpointSource, unet2d: dict | None = None, motion: dict | None = None,
                         pose_guider_channels: tuple[int, ...] | None = None) -> Architecture:
    """Full-size SD1.5 + AnimateDiff v2 motion modules (mid block, 8 heads, 32 positions) unless overridden
    (the tests use tiny configs of the same classes)."""
    unet2d = dict(unet2d or SD15_UNET)
    if source.time_cond_proj_dim is not None:
        unet2d.setdefault("time_cond_proj_dim", source.time_cond_proj_dim)
    motion = dict(motion or dict(MOTION_ADAPTER_V2, motion_max_seq_length=source.motion_max_seq_length))
    return Architecture(unet2d=unet2d, motion=motion,
                        pose_guider_channels=tuple(pose_guider_channels or source.pose_guider_channels))


# Tiny models of the same classes (tests, --tiny benchmarks); tests/fixtures/converters/ records the outputs of
# the sources' own code on these configs with random weights.
TINY_UNET2D = dict(
    sample_size=8, in_channels=4, out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 64), layers_per_block=1,
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
)
TINY_MOTION = dict(block_out_channels=(32, 64), motion_layers_per_block=1, motion_num_attention_heads=8,
                   motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=True)
TINY_POSE_GUIDER_CHANNELS = (16, 32, 64, 128)
TINY_IMAGE_ENCODER = dict(image_size=224, patch_size=32, hidden_size=32, projection_dim=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64)
SD_IMAGE_VARIATIONS_IMAGE_ENCODER = dict(image_size=224, patch_size=14, hidden_size=1024, projection_dim=768,
                                         num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                                         hidden_act="quick_gelu")  # CLIP ViT-L/14


def tiny_architecture(source: CheckpointSource) -> Architecture:
    unet2d = dict(TINY_UNET2D)
    if source.time_cond_proj_dim is not None:
        unet2d["time_cond_proj_dim"] = 16
    return Architecture(unet2d=unet2d, motion=dict(TINY_MOTION), pose_guider_channels=TINY_POSE_GUIDER_CHANNELS)


def build_random_pipeline(name: str, tiny: bool = False, torch_dtype: torch.dtype = torch.float32, device="cpu",
                          seed: int = 0, decoder: str = "taesd") -> TurboNextPipeline:
    """Family ``name``'s architecture with random weights (full size, or tiny): what ``turbonext bench stream
    --arch`` times, so each family's speed is measured by the same command. ``decoder``: "taesd" (fast) or
    "sd-vae" (the families' own decoder for Moore/MusePose)."""
    source = get_source(name)
    arch = tiny_architecture(source) if tiny else architecture_configs(source)
    torch.manual_seed(seed)
    models = build_models(source, arch, empty=False)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**(TINY_IMAGE_ENCODER if tiny else SD_IMAGE_VARIATIONS_IMAGE_ENCODER)))
    vae = AutoencoderKL(**(TINY_VAE if tiny else SD15_VAE))
    taesd = AutoencoderTiny(**(TINY_TAESD if tiny else TAESD)) if decoder == "taesd" else None
    pipe = assemble(source, models, encoder, vae, taesd).to(device)
    return pipe if torch_dtype == torch.float32 else pipe.to(dtype=torch_dtype)


def build_models(source: CheckpointSource, arch: Architecture, empty: bool = True) -> dict:
    """reference_unet, unet and pose_guider of ``arch``: on the meta device (``empty``, to be filled with
    ``load_state_dict(..., assign=True)``) or randomly initialised."""
    def make():
        # the ReferenceNet runs once at timestep 0 and takes no guidance embedding (RAIN's has no cond_proj)
        reference_unet = UNet2DConditionModel(**{k: v for k, v in arch.unet2d.items() if k != "time_cond_proj_dim"})
        layout = TurboNextUNetMotionModel.from_unet2d(UNet2DConditionModel(**arch.unet2d),
                                                      MotionAdapter(**arch.motion), load_weights=False)
        config = {k: v for k, v in layout.config.items() if not k.startswith("_")}
        config.update(motion_norm="per_frame", stream_schedule=source.stream_schedule)
        unet = TurboNextUNetMotionModel.from_config(config)
        guider = PoseGuider(layout="animate_anyone", block_out_channels=arch.pose_guider_channels,
                            out_channels=arch.unet2d["block_out_channels"][0])
        return dict(reference_unet=reference_unet, unet=unet, pose_guider=guider)

    if not empty:
        return make()
    with init_empty_weights():
        return make()


def _shapes(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def map_checkpoint(source: CheckpointSource, states: dict[str, dict[str, torch.Tensor]], models: dict
                   ) -> tuple[dict[str, dict[str, torch.Tensor]], MappingReport]:
    """``states``: role -> the file's state dict. Returns component -> mapped state dict, and the report."""
    targets = {"reference_unet": "reference_unet", "denoising_unet": "unet", "motion_module": "unet",
               "pose_guider": "pose_guider"}
    report = MappingReport()
    mapped: dict[str, dict[str, torch.Tensor]] = {"reference_unet": {}, "unet": {}, "pose_guider": {}}
    expected = {name: _shapes(model) for name, model in models.items()}
    tables = {k: v for k, v in models["unet"].state_dict().items() if k.endswith("pos_embed.pe")}
    for role, file in source.files.items():
        target = targets[role]
        map_state_dict(file, target, states[role], expected[target], mapped[target], report,
                       position_table=tables.__getitem__)
    for target, keys in expected.items():
        missing = missing_keys(keys, mapped[target])
        if target == "reference_unet":  # their ReferenceNet class has no output layers: nothing reads them
            report.filled[target] = [k for k in missing if k.split(".")[0] in REFERENCE_OUTPUT_LAYERS]
            for key in report.filled[target]:
                mapped[target][key] = _neutral(key, keys[key])
            missing = [k for k in missing if k not in report.filled[target]]
        report.missing[target] = missing
    return mapped, report


REFERENCE_OUTPUT_LAYERS = ("conv_norm_out", "conv_out")


def _neutral(key: str, shape: tuple) -> torch.Tensor:
    """A GroupNorm weight of ones, anything else zeros (the output of these layers is never used)."""
    return torch.ones(shape) if key == "conv_norm_out.weight" else torch.zeros(shape)


COMPONENT_FILES = ("config.json", "preprocessor_config.json", "diffusion_pytorch_model.safetensors",
                   "model.safetensors", "pytorch_model.bin")


def _component_folder(name_or_path: str, subfolder: str, cache_dir=None, local_files_only=False) -> tuple[str, str | None]:
    """(folder, subfolder or None) for a component that may sit in a subfolder of a repo or a local folder. From
    the Hub, only that component's files are downloaded (the subfolder's, else the repo root's): never a whole
    pipeline repo (the Hub's patterns let "*" cross folders, so none is used at the root)."""
    path = Path(os.fspath(name_or_path)).expanduser()
    if not path.is_dir() and is_repo_id(str(name_or_path)):
        from huggingface_hub import snapshot_download

        download = dict(cache_dir=cache_dir, local_files_only=local_files_only)
        path = Path(snapshot_download(str(name_or_path), allow_patterns=[f"{subfolder}/{f}" for f in COMPONENT_FILES],
                                      **download))
        if not (path / subfolder / "config.json").is_file():
            path = Path(snapshot_download(str(name_or_path), allow_patterns=list(COMPONENT_FILES), **download))
    if (path / subfolder / "config.json").is_file():
        return str(path), subfolder
    if (path / "config.json").is_file():
        return str(path), None
    raise FileNotFoundError(f"{name_or_path}: no config.json in it or in its {subfolder}/ subfolder.")


def load_image_encoder(name_or_path: str = DEFAULT_IMAGE_ENCODER, torch_dtype=torch.float32,
                       **kwargs) -> CLIPVisionModelWithProjection:
    """sd-image-variations' CLIP vision encoder (its ``image_encoder/``) or a local folder with one.
    Safetensors when present; a ``pytorch_model.bin`` is read by transformers with ``weights_only=True``."""
    folder, sub = _component_folder(name_or_path, "image_encoder", **kwargs)
    encoder = CLIPVisionModelWithProjection.from_pretrained(folder, **({"subfolder": sub} if sub else {}))
    return encoder.to(torch_dtype)


def load_vae(name_or_path: str = DEFAULT_VAE, tiny: bool = False, torch_dtype=torch.float32, **kwargs):
    folder, sub = _component_folder(name_or_path, "vae", **kwargs)
    cls = AutoencoderTiny if tiny else AutoencoderKL
    return cls.from_pretrained(folder, use_safetensors=True, torch_dtype=torch_dtype, **({"subfolder": sub} if sub else {}))


def make_scheduler(source: CheckpointSource):
    cls = {"DDIMScheduler": DDIMScheduler, "LCMScheduler": LCMScheduler}[source.scheduler_class]
    return cls(**source.scheduler_config)


def assemble(source: CheckpointSource, models: dict, image_encoder, vae, tiny_vae=None) -> TurboNextPipeline:
    """The converted pipeline: ``vae`` encodes the reference (and decodes, unless ``tiny_vae`` is given)."""
    return TurboNextPipeline(
        vae=tiny_vae if tiny_vae is not None else vae, text_encoder=None, tokenizer=None, unet=models["unet"],
        reference_unet=models["reference_unet"], pose_guider=models["pose_guider"], scheduler=make_scheduler(source),
        encoder_vae=vae if tiny_vae is not None else None, image_encoder=image_encoder,
        feature_extractor=CLIPImageProcessor(),  # the defaults their code uses: CLIPImageProcessor()
        reference_in_uncond=False, embedded_guidance_scale=source.embedded_guidance_scale,
        pose_style=source.pose_style, stream_update=source.stream_update,
        default_num_inference_steps=source.num_inference_steps, default_guidance_scale=source.guidance_scale,
    )


def convert_checkpoint(name: str, src: str, out: str | None = None, image_encoder: str = DEFAULT_IMAGE_ENCODER,
                       vae: str = DEFAULT_VAE, tiny_vae: str | None = None, dtype: str = "fp16",
                       arch: Architecture | None = None, cache_dir: str | None = None,
                       local_files_only: bool = False, log=print) -> tuple[TurboNextPipeline, MappingReport]:
    """Convert family ``name`` ("animate-anyone", "musepose", "rain") from ``src`` (a folder or Hub repo id) into a
    TurboNextPipeline, saved to ``out`` (safetensors + configs + a model card) when given. Raises
    :class:`ConversionError` unless every key maps (none unused, none missing)."""
    source = get_source(name)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    arch = arch or architecture_configs(source)
    hub = dict(cache_dir=cache_dir, local_files_only=local_files_only)
    paths = fetch_files(src, list(source.file_paths().values()), **hub)
    states = {role: load_state_dict(paths[rel]) for role, rel in source.file_paths().items()}
    log(f"read {', '.join(str(p) for p in paths.values())}")
    models = build_models(source, arch, empty=True)
    mapped, report = map_checkpoint(source, states, models)
    log(report.format())
    if not report.ok:
        raise ConversionError(report)
    torch_dtype = DTYPES[dtype]
    for component, model in models.items():
        model.load_state_dict({k: v.to(torch_dtype) for k, v in mapped[component].items()}, strict=True, assign=True)
    pipe = assemble(source, models, load_image_encoder(image_encoder, torch_dtype=torch_dtype, **hub),
                    load_vae(vae, torch_dtype=torch_dtype, **hub),
                    None if tiny_vae is None else load_vae(tiny_vae, tiny=True, torch_dtype=torch_dtype, **hub))
    if out is not None:
        pipe.save_pretrained(out, safe_serialization=True)
        write_conversion_card(out, source, src, report, dict(image_encoder=image_encoder, vae=vae, tiny_vae=tiny_vae,
                                                              dtype=dtype))
        log(f"saved {out}: TurboNextPipeline.from_pretrained({str(out)!r})")
    return pipe, report


def write_conversion_card(out: str, source: CheckpointSource, src: str, report: MappingReport, options: dict) -> None:
    """README.md (model card) and conversion.json in ``out``: the source, its licences, the conversion and how
    to run it."""
    command = (f"turbonext convert {source.name} {src} {out} --image-encoder {options['image_encoder']} "
               f"--vae {options['vae']}" + (f" --tiny-vae {options['tiny_vae']}" if options["tiny_vae"] else "")
               + f" --dtype {options['dtype']}")
    stream = (f"window {source.stream_window}, {source.stream_frames_per_level} frames per level"
              if source.stream_window else "uniform layout (every frame being denoised at one level)")
    card = f"""---
library_name: turbonext
license: other
tags: [pose-transfer, turbonext, converted]
---
# {source.title}, converted for turbonext

The weights of {source.title} ({source.code_url}, Hub `{source.hub_repo}`), converted key for key into a
`TurboNextPipeline` folder (safetensors). Nothing was retrained or changed.

- Code licence of the source: {source.code_licence}. Weights: {source.weights_licence}.
- Good for: {source.good_for}.
- Conversion: `{command}`
- Runs as the source does: image-prompt conditioning (CLIP image embedding of the reference), its pose guider,
  AnimateDiff v2 motion modules with per-frame GroupNorm, `{source.scheduler_class}` (v-prediction, zero
  terminal SNR, trailing timesteps), {source.num_inference_steps} steps, guidance {source.guidance_scale}
  {"(embedded: w = " + str(source.embedded_guidance_scale) + ")" if source.embedded_guidance_scale else ""};
  under classifier-free guidance the unconditional rows do not read the reference.
- Pose maps: `{source.pose_style}` style (`turbonext.pose.render_pose(..., style=pipe.config.pose_style)`).
- Streaming: `pipe.stream(...)`, {stream}.
{"".join(f"- {note}" + chr(10) for note in source.notes)}
```py
import turbonext
pipe = turbonext.load_for_inference("{out}")  # the best device here: fp16 on a GPU, fp32 on a CPU
video = pipe(reference_image=photo, pose_images=poses).frames[0]  # {source.num_inference_steps} steps, guidance {source.guidance_scale}: its defaults
```

## Key mapping
```
{report.format()}
```
"""
    Path(out, "README.md").write_text(card)
    Path(out, "conversion.json").write_text(json.dumps(
        {"source": source.name, "src": str(src), "code": source.code_url, "code_licence": source.code_licence,
         "weights_licence": source.weights_licence, "options": options, "command": command,
         "num_inference_steps": source.num_inference_steps, "guidance_scale": source.guidance_scale,
         "stream_window": source.stream_window, "stream_frames_per_level": source.stream_frames_per_level,
         "files": [{"file": f.file, "component": f.target, "mapped": f.mapped, "unused": f.unused,
                    "mismatched": f.mismatched} for f in report.files],
         "missing": report.missing}, indent=2))
