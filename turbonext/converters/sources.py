"""What turbonext knows about each public checkpoint family it converts: files, defaults, licences.

Facts read from each project's public code (never copied): which files ship, how their models are built
(SD1.5 UNets, the AnimateDiff v2 motion-module layout with a mid block, 8 heads, 32 positions, per-frame
GroupNorm), the pose guider widths, the scheduler and sampler their inference uses, and how their pose maps
are drawn. ``tests/fixtures/converters/`` holds the key manifests derived from their code and the
random-weight outputs of their code that the converted models are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field


DEFAULT_IMAGE_ENCODER = "lambdalabs/sd-image-variations-diffusers"  # its image_encoder/ subfolder
DEFAULT_VAE = "stabilityai/sd-vae-ft-mse"

# The noise schedule of all three: SD1.5's betas, v-prediction, zero terminal SNR, trailing timesteps.
_ZERO_SNR_V = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1,
    prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing",
)


@dataclass(frozen=True)
class CheckpointSource:
    """One checkpoint family: where its files are and what the converted pipeline needs to run it faithfully."""

    name: str  # the CLI name
    title: str
    hub_repo: str  # the default SRC (a Hub model repo)
    hub_subfolder: str | None  # where the .pth files are inside it
    files: dict[str, str]  # role -> file name; roles: reference_unet, denoising_unet, motion_module, pose_guider
    code_url: str
    code_licence: str
    weights_licence: str
    good_for: str
    pose_guider_channels: tuple[int, ...]
    scheduler_class: str  # "DDIMScheduler" or "LCMScheduler"
    scheduler_config: dict
    stream_schedule: str  # "uniform" or "staggered" (trained on stepped noise levels)
    stream_update: str  # "ddim" or "lcm"
    num_inference_steps: int
    guidance_scale: float
    pose_style: str
    time_cond_proj_dim: int | None = None
    embedded_guidance_scale: float | None = None
    motion_max_seq_length: int = 32  # the motion modules' position table (temporal_position_encoding_max_len)
    stream_window: int | None = None
    stream_frames_per_level: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def file_paths(self) -> dict[str, str]:
        """Role -> path inside the Hub repo."""
        prefix = f"{self.hub_subfolder}/" if self.hub_subfolder else ""
        return {role: prefix + name for role, name in self.files.items()}


SOURCES: dict[str, CheckpointSource] = {
    "animate-anyone": CheckpointSource(
        name="animate-anyone",
        title="Moore-AnimateAnyone",
        hub_repo="patrolli/AnimateAnyone",
        hub_subfolder=None,
        files={"reference_unet": "reference_unet.pth", "denoising_unet": "denoising_unet.pth",
               "motion_module": "motion_module.pth", "pose_guider": "pose_guider.pth"},
        code_url="https://github.com/MooreThreads/Moore-AnimateAnyone",
        code_licence="Apache-2.0",
        weights_licence="not read here (no network): the code repository is Apache-2.0; check the weights repo's terms",
        good_for="full-body pose-to-video of real people, offline quality (20-30 DDIM steps, CFG 3.5)",
        pose_guider_channels=(16, 32, 96, 256),
        scheduler_class="DDIMScheduler",
        # its inference config (configs/inference/inference_v2.yaml) says "linear", which is what its published
        # samples were made with; its training scripts use "scaled_linear" (tests/fixtures/converters/README.md)
        scheduler_config=dict(_ZERO_SNR_V, beta_schedule="linear"),
        stream_schedule="uniform",
        stream_update="ddim",
        num_inference_steps=30,
        guidance_scale=3.5,
        pose_style="openpose",
    ),
    "musepose": CheckpointSource(
        name="musepose",
        title="MusePose",
        hub_repo="TMElyralab/MusePose",
        hub_subfolder="MusePose",
        files={"reference_unet": "reference_unet.pth", "denoising_unet": "denoising_unet.pth",
               "motion_module": "motion_module.pth", "pose_guider": "pose_guider.pth"},
        code_url="https://github.com/TMElyralab/MusePose",
        code_licence="MIT",
        weights_licence="non-commercial research only (its README: 'The trained model are available for "
                        "non-commercial research purposes only'); the models it builds on keep their own licences",
        good_for="full-body dance videos of real people, offline quality (20-30 DDIM steps, CFG 3.5); "
                 "pose maps aligned to the reference's body (pose_align)",
        pose_guider_channels=(16, 32, 96, 256),
        scheduler_class="DDIMScheduler",
        scheduler_config=dict(_ZERO_SNR_V, beta_schedule="scaled_linear"),  # its inference_v2.yaml (Moore's: "linear")
        stream_schedule="uniform",
        stream_update="ddim",
        num_inference_steps=20,
        motion_max_seq_length=128,  # its inference_v2.yaml: temporal_position_encoding_max_len 128
        guidance_scale=3.5,
        pose_style="musepose",  # DWPose drawing with red and blue swapped (BGR canvas), length-scaled widths,
    ),
    "rain": CheckpointSource(
        name="rain",
        title="RAIN v0.1",
        hub_repo="Pscgylotti/RAIN-v0.1",
        hub_subfolder=None,
        files={"reference_unet": "reference_unet.pth", "denoising_unet": "motion_unet.pth",
               "pose_guider": "pose_guider.pth"},
        code_url="https://github.com/MatrixTeam-AI/RAIN",
        code_licence="Apache-2.0",
        weights_licence="not stated in the code repository (Apache-2.0); check the weights repo before commercial use",
        good_for="live anime face morphing from a webcam (4 LCM steps on stepped noise levels); driven by "
                 "face landmarks, not body poses",
        pose_guider_channels=(16, 32, 96, 256),
        scheduler_class="LCMScheduler",
        # trailing timesteps 999/749/499/249 at 4 steps: diffusers' LCMScheduler gives them with 4 original steps
        scheduler_config=dict(_ZERO_SNR_V, beta_schedule="scaled_linear", original_inference_steps=4),
        stream_schedule="staggered",
        stream_update="lcm",
        num_inference_steps=4,
        guidance_scale=1.0,
        pose_style="rain_face",
        time_cond_proj_dim=512,
        embedded_guidance_scale=2.5,
        stream_window=16,
        stream_frames_per_level=4,
        notes=("RAIN's PyTorch path decodes with sd-vae-ft-mse (as turbonext's default --vae); its TensorRT path "
               "decodes with TAESDV (a temporal TAESD), which turbonext does not implement: --tiny-vae "
               "madebyollin/taesd is the fast per-frame alternative.",),
    ),
}


def get_source(name: str) -> CheckpointSource:
    if name not in SOURCES:
        raise ValueError(f"unknown checkpoint family {name!r}; turbonext converts {sorted(SOURCES)}.")
    return SOURCES[name]
