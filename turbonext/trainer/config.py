"""Training configuration: one flat dataclass, loaded from YAML plus ``key=value`` overrides.

Unknown keys are rejected (a typo must never be silently ignored), values are checked against the
field types, and the resolved config is written next to every checkpoint so a run can be
reproduced (and exported) from its checkpoint alone.

Example::

    cfg = load_config("training/configs/synthetic_tiny.yaml", ["max_train_steps=100", "mixed_precision=bf16"])
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Sequence, Union, get_args, get_origin, get_type_hints

import yaml

from turbonext.loaders.hub import DEFAULT_BASE, DEFAULT_MOTION_ADAPTER, DEFAULT_TINY_VAE


MIXED_PRECISION = ("no", "fp16", "bf16")
REPORT_TO = ("none", "tensorboard")


@dataclass
class TrainConfig:
    """Every setting of a training run. Field comments say what each one does."""

    # --- model (Hub repo ids or local folders in the same layouts; see turbonext.loaders.assemble)
    base: str = DEFAULT_BASE  # SD1.5 layout: unet/ vae/ text_encoder/ tokenizer/ scheduler/
    motion_adapter: str | None = DEFAULT_MOTION_ADAPTER  # AnimateDiff adapter; None = fresh temporal layers
    tiny_vae: str | None = DEFAULT_TINY_VAE  # TAESD used by validation/export for decoding; None = SD VAE
    encode_with_sd_vae: bool = True  # encode training latents with the SD VAE (as the pipeline does)
    pose_guider: str | None = None  # initial PoseGuider folder; None = a new zero-initialised one
    reference_unet: str | None = None  # initial ReferenceNet folder; None = a copy of the base UNet
    init_checkpoint: str | None = None  # start from a checkpoint's trained parts (stage 2 from stage 1), step 0
    init_pipeline: str | None = None  # start from an exported pipeline folder's unet, reference_unet and
    # pose_guider (e.g. turbonext/demo/turbonext-demo; also "turbonext-demo" or a Hub repo id), step 0
    revision: str | None = None
    # --- what trains (pose guider + main-UNet spatial self-attention always)
    train_reference_unet: bool = False
    train_motion_modules: bool = False
    train_full_unet: bool = False  # every main-UNet weight (only for from-scratch tiny models; not the design)
    reference_pose: bool = False  # the pose guider also encodes the reference's pose into the ReferenceNet
    # --- data
    dataset_dir: str = "dataset"  # dataset/<video_id>/<scene_id>/{images,poses}/00001.jpg
    split: str | None = None  # a split name of <dataset_dir>/split.json (e.g. "train"); None = all scenes
    resolution: int = 512  # square training size in pixels (divisible by 8)
    num_frames: int = 1  # consecutive target frames per sample: 1 = image stage, 16 = video stage
    frame_stride: int = 1  # take every k-th frame inside a clip
    reference_min_distance: int = 8  # same-scene references must be at least this many frames from the clip
    color_augmentation: float = 0.0  # probability of one RGB channel permutation shared by reference and clip
    same_scene_reference: float = 0.0  # probability of a reference from the clip's own scene (a nearby pose)
    hue_augmentation: float = 0.0  # probability of one random hue rotation shared by reference and clip
    prompt: str = ""  # text condition for every sample (SD1.5 needs one; empty is fine)
    dataloader_num_workers: int = 0
    # --- optimisation
    seed: int = 0
    train_batch_size: int = 1
    max_train_steps: int = 10000  # optimizer steps (after accumulation)
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant_with_warmup"  # any name of diffusers.optimization.get_scheduler
    lr_warmup_steps: int = 500
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # "no", "fp16" (GPU) or "bf16"
    gradient_checkpointing: bool = False
    allow_tf32: bool = True
    # --- loss
    per_frame_timesteps: float = 0.0  # probability a clip gets an independent noise level per frame (streaming)
    noise_offset: float = 0.0  # std of a constant per-(clip, frame, channel) offset added to the noise (offset noise)
    pose_loss_weighting: bool = False  # TrioPose pose-guided spatial weighting of the noise MSE
    pose_loss_strength: float = 1.0  # weight = 1 + strength * heatmap
    pose_heatmap_threshold: float = 0.1  # a pose-map pixel is skeleton if its brightest channel exceeds this
    pose_heatmap_dilation: float = 0.03  # grow the skeleton by this fraction of the image size
    pose_heatmap_blur: float = 1.0  # Gaussian sigma in latent cells (0 = no blur)
    reference_focus: float = 0.0  # probability a sample's reference attention may read only the person's tokens
    reference_focus_dilation: float = 0.06  # the person's region: the reference skeleton grown by this x image size
    figure_color_loss: float = 0.0  # weight of the person's low-pass x0 error at noisy steps (0 = off)
    figure_color_min_timestep: int = 500  # frames noisier than this get the figure colour loss
    high_noise_loss_weight: float = 0.0  # > 1: weight each frame's loss by clamp(1/SNR(t), 1, this) (0 = off)
    # --- the live stream's window layout (RAIN-style; training/README.md, "Training for the live stream")
    stream_layout: float = 0.0  # probability a clip is noised as a StreamSession window lays it out (a staircase)
    stream_num_inference_steps: int = 4  # K: the stream's LCM levels (its num_inference_steps)
    stream_frames_per_level: int = 1  # m: frames per level (the stream's frames_per_level)
    stream_context_frames: int = 0  # C: clean frames before the staircase (the stream's window - K*m)
    stream_clean_context: float = 0.0  # probability a stream-layout clip starts with 1..C clean context frames
    stream_timestep_jitter: int = 0  # move each level's timestep by a random -j..j training steps (0 = exact)
    # --- checkpoints, logging, validation
    output_dir: str = "runs/turbonext"
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = None  # keep at most this many checkpoint-N folders
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    report_to: str = "tensorboard"  # "tensorboard" (skipped with a warning if not installed) or "none"
    logging_steps: int = 1
    validation_steps: int = 500  # 0 = never
    validation_split: str | None = None  # split of split.json to take the validation scene from
    validation_num_frames: int = 8
    validation_num_inference_steps: int = 10
    validation_fps: int = 8
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, saved with the config

    # ------------------------------------------------------------------ checks
    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` on inconsistent values; returns ``self``."""
        if self.resolution % 8 or self.resolution < 8:
            raise ValueError(f"resolution must be a positive multiple of 8, got {self.resolution}.")
        positive = ("num_frames", "frame_stride", "train_batch_size", "max_train_steps", "gradient_accumulation_steps",
                    "checkpointing_steps", "logging_steps", "validation_num_frames", "validation_num_inference_steps")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}.")
        if self.report_to not in REPORT_TO:
            raise ValueError(f"report_to must be one of {REPORT_TO}, got {self.report_to!r}.")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError(f"checkpoints_total_limit must be >= 1 or null, got {self.checkpoints_total_limit}.")
        if not 0.0 <= self.per_frame_timesteps <= 1.0:
            raise ValueError(f"per_frame_timesteps is a probability in [0, 1]; got {self.per_frame_timesteps}.")
        for key in ("stream_num_inference_steps", "stream_frames_per_level"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}.")
        for key in ("stream_context_frames", "stream_timestep_jitter"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}.")
        if self.stream_clean_context > 0 and self.stream_context_frames == 0:
            raise ValueError("stream_clean_context > 0 needs stream_context_frames >= 1 (how many clean frames "
                             "the stream's window holds before its staircase: window - K*m).")
        for name in ("color_augmentation", "same_scene_reference", "hue_augmentation", "stream_layout",
                     "stream_clean_context"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1]; got {getattr(self, name)}.")
        if not 0.0 <= self.reference_focus <= 1.0:
            raise ValueError(f"reference_focus is a probability in [0, 1], got {self.reference_focus}")
        if self.figure_color_loss < 0:
            raise ValueError(f"figure_color_loss must be >= 0, got {self.figure_color_loss}")
        if self.high_noise_loss_weight != 0 and self.high_noise_loss_weight < 1:
            raise ValueError(f"high_noise_loss_weight must be 0 (off) or >= 1, got {self.high_noise_loss_weight}")
        if self.noise_offset < 0:
            raise ValueError(f"noise_offset is a standard deviation (>= 0; 0.05-0.1 is usual); got {self.noise_offset}.")
        if self.init_pipeline is not None:
            given = [k for k in ("init_checkpoint", "pose_guider", "reference_unet") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"init_pipeline and {', '.join(given)} are mutually exclusive: init_pipeline already "
                                 "sets the UNet, ReferenceNet and pose guider weights (set the other(s) to null).")
        if self.learning_rate <= 0 or self.pose_loss_strength < 0:
            raise ValueError("learning_rate must be > 0 and pose_loss_strength >= 0.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write the resolved config as YAML (loadable with :func:`load_config`)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _accepted() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field type ``hint``; ints and "1e-4"-style strings become floats."""
    args = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    expected = get_origin(args[0]) or args[0]  # e.g. str | None -> str, dict[str, Any] -> dict
    if value is None:
        if type(None) in args:
            return None
        raise ValueError(f"config key {key!r} cannot be null (type {expected.__name__}).")
    if expected is float and not isinstance(value, bool):
        if isinstance(value, int):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        raise ValueError(f"config key {key!r} must be of type {expected.__name__}, got {value!r} ({type(value).__name__}).")
    return value


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a validated :class:`TrainConfig`; unknown keys raise ``ValueError`` naming the accepted ones."""
    accepted = _accepted()
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        hints = "".join(
            f" ({k!r}: did you mean {m[0]!r}?)" for k in unknown if (m := difflib.get_close_matches(k, accepted, n=1))
        )
        raise ValueError(f"unknown config key(s) {unknown}{hints}. Accepted keys: {', '.join(accepted)}.")
    hints = get_type_hints(TrainConfig)
    return TrainConfig(**{k: _coerce(k, v, hints[k]) for k, v in values.items()}).validate()


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict, values parsed as YAML scalars (``lr=1e-4``, ``split=null``)."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value.")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (a flat mapping) and apply ``key=value`` overrides on top."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a training config must be a YAML mapping of key: value.")
        values.update(loaded or {})
    values.update(parse_overrides(overrides))
    return config_from_dict(values)
