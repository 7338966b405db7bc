"""The training loop (accelerate): pose guider + reference-reading attention on noise-prediction MSE.

One step, for a batch of B clips of F frames (latents h = H/8)::

    frames (B, F, 3, H, W) --VAE--> latents (B, 4, F, h, w); noise, t ~ U[0, 1000) per clip
        (or per frame: ``per_frame_timesteps``; or a live stream window's staircase: ``stream_layout``)
    reference (B, 3, H, W) --VAE--> (B, 4, h, w) --ReferenceNet ("write")--> tokens per attn1 layer
    poses (B*F, 3, H, W) --PoseGuider--> (B*F, 320, h, w), added after the UNet's conv_in
    UNet("read": attn1 attends to [own ; reference] tokens)(noisy latents, t, text) -> eps (B, 4, F, h, w)
    loss = MSE(eps, noise), optionally weighted up near the skeleton (TrioPose); clean context frames
        of a stream-layout clip are left out of it

``python training/train.py --config training/configs/<name>.yaml [key=value ...]`` runs :func:`cli_main`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, set_seed
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler
from tqdm.auto import tqdm

from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.schedulers.scheduling_staggered_lcm import StaggeredLCMSchedule
from turbonext.trainer import checkpoints
from turbonext.trainer.config import TrainConfig, load_config
from turbonext.trainer.dataset import PoseVideoDataset
from turbonext.trainer.losses import (
    diffusion_loss,
    figure_color_loss,
    high_noise_weights,
    pose_heatmap,
    pose_loss_weights,
)
from turbonext.trainer.trainable import build_pipeline, configure_trainable, count_parameters
from turbonext.trainer.training_model import TrainingModel
from turbonext.trainer.validation import pick_validation_clip, run_validation


logger = logging.getLogger(__name__)
DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class TrainResult:
    """What :func:`train` leaves behind: the trained pipeline (unwrapped) and where the run stands."""

    pipe: TurboNextPipeline
    start_step: int  # 0, or the step of the checkpoint resumed from
    global_step: int
    output_dir: Path
    last_loss: float | None


def sample_timesteps(batch: int, num_frames: int, num_train_timesteps: int, per_frame: float,
                     device: torch.device | str) -> torch.Tensor:
    """Training timesteps: one per clip (B,), or with ``per_frame`` > 0 a (B, F) tensor in which each clip,
    with that probability, draws an independent timestep for every frame (the others repeat theirs).

    Per-frame noise levels are what a :class:`~turbonext.StreamSession` window holds (clean context,
    then frames at staggered levels), so a model trained with them has seen its streaming inputs.
    """
    shared = torch.randint(0, num_train_timesteps, (batch,), device=device)  # (B,)
    if per_frame <= 0:
        return shared
    independent = torch.randint(0, num_train_timesteps, (batch, num_frames), device=device)  # (B, F)
    pick = torch.rand(batch, device=device) < per_frame  # (B,)
    return torch.where(pick[:, None], independent, shared[:, None].expand(batch, num_frames))


def stream_schedule_timesteps(scheduler_config, num_inference_steps: int) -> torch.Tensor:
    """The (K,) timesteps of a :class:`~turbonext.StreamSession` with ``num_inference_steps`` levels, noisiest
    (level 0) first, e.g. 999, 759, 499, 259: the session's own :class:`StaggeredLCMSchedule` built from
    ``scheduler_config``, so training and streaming cannot drift apart.

    Pass the pipeline's scheduler config (the base's): an export's ``LCMScheduler`` (``--scheduler lcm``,
    LCM-LoRA) is built from it, and the LCM timesteps depend only on ``num_train_timesteps`` and
    ``original_inference_steps``. (Not the training ``DDPMScheduler``'s: ``from_config`` fills its defaults
    in, e.g. ``clip_sample=True``, which the stream refuses.)
    """
    return StaggeredLCMSchedule(scheduler_config, num_inference_steps).timesteps.cpu()


def stream_layout_timesteps(batch: int, num_frames: int, levels: torch.Tensor, frames_per_level: int = 1,
                            context_frames: int = 0, clean_context: float = 0.0, jitter: int = 0,
                            num_train_timesteps: int = 1000, device: torch.device | str = "cpu",
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame timesteps (B, F) laid out as a :class:`~turbonext.StreamSession` window, plus the (B, F) mask
    of its clean context frames (timestep 0).

    The session's window, oldest slot first, is ``[C clean | m at level K-1 | ... | m at level 0]`` with
    ``levels`` (K,) = :func:`stream_schedule_timesteps` (level 0 = noisiest), m = ``frames_per_level``,
    C = ``context_frames``: timesteps never decrease from the oldest frame to the newest. Number the
    staircase's slots j = 0..K*m-1 (oldest first; j < 0: the clean frames before it). A clip of F
    consecutive frames (oldest first, as the dataset gives them) takes the slots [o, o + F) for a random
    phase o, never past the newest slot:

    * with probability ``clean_context`` (if C > 0) the clip starts with 1..C clean frames followed by
      the staircase from its oldest level (o in [-C, -1]; c = C is the session's exact layout, smaller
      c the slices of its window cut at the old end);
    * otherwise it is any F-frame slice of the staircase (o in [0, K*m - F]), partial levels at the
      edges included. A clip longer than the staircase has it at its end and clean frames before it
      (every frame of a stream window older than the staircase is clean).

    Every clip keeps at least one noisy frame. ``jitter`` > 0 moves each level's timestep, per clip, by a
    uniform integer in [-jitter, jitter] (frames of one level keep sharing it, as in the stream; levels
    never cross). Not modelled: the "ghost" frames (pure noise) of a window that is still filling.
    """
    levels = levels.to(device=device, dtype=torch.long)
    k, m, f = len(levels), frames_per_level, num_frames
    if k < 1 or m < 1 or f < 1 or context_frames < 0 or jitter < 0:
        raise ValueError("stream layout: needs >= 1 level, frames per level and frame; context_frames, jitter >= 0.")
    gaps = (levels[:-1] - levels[1:]).abs()
    if k > 1 and 2 * jitter >= int(gaps.min()):
        raise ValueError(f"stream_timestep_jitter={jitter} lets levels {levels.tolist()} cross: use less than "
                         f"half their smallest gap ({int(gaps.min())}).")
    newest = k * m - f  # the largest phase: the clip ends at the staircase's newest slot
    plain_lo = min(0, newest)  # a clip longer than the staircase starts with the clean frames it needs
    ctx_lo, ctx_hi = max(1 - f, min(-context_frames, newest)), min(-1, newest)
    lo = torch.full((batch,), plain_lo, dtype=torch.long, device=device)
    hi = torch.full((batch,), newest, dtype=torch.long, device=device)
    if context_frames > 0 and clean_context > 0 and ctx_lo <= ctx_hi:
        with_context = torch.rand(batch, device=device) < clean_context  # (B,)
        lo = torch.where(with_context, ctx_lo, lo)
        hi = torch.where(with_context, ctx_hi, hi)
    phase = torch.minimum(lo + (torch.rand(batch, device=device) * (hi - lo + 1)).long(), hi)  # (B,) in [lo, hi]
    slot = phase[:, None] + torch.arange(f, device=device)  # (B, F) staircase slot of each frame
    clean = slot < 0
    level = (k - 1 - slot.clamp(min=0) // m).clamp(0, k - 1)  # (B, F); clean frames: any, masked below
    timesteps = levels[level]
    if jitter > 0:
        shift = torch.randint(-jitter, jitter + 1, (batch, k), device=device)  # one per clip and level
        timesteps = (timesteps + shift.gather(1, level)).clamp(0, num_train_timesteps - 1)
    return torch.where(clean, torch.zeros_like(timesteps), timesteps), clean


def _per_frame(fn, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """Apply a scheduler's ``fn(x, noise, t)`` with ``t`` of shape (B,) or (B, F) to (B, C, F, h, w) tensors."""
    if timesteps.ndim == 1:
        return fn(latents, noise, timesteps)
    b, c, f = latents.shape[:3]

    def frames(x: torch.Tensor) -> torch.Tensor:  # (B, C, F, h, w) -> (B*F, C, h, w)
        return x.permute(0, 2, 1, 3, 4).flatten(0, 1)

    out = fn(frames(latents), frames(noise), timesteps.flatten())  # (B*F, C, h, w)
    return out.view(b, f, c, *out.shape[-2:]).permute(0, 2, 1, 3, 4)


def training_noise(latents: torch.Tensor, noise_offset: float = 0.0) -> torch.Tensor:
    """Gaussian noise like ``latents`` (B, C, F, h, w), plus, with ``noise_offset`` > 0, a constant offset per
    clip, frame and channel drawn with that standard deviation ("offset noise", diffusers' ``--noise_offset``).

    A few-step model trained on plain noise never learns to remove the constant part of its noise: an
    initial noise frame whose channel mean happens to sit a few standard errors from zero comes out
    with a tinted, noisy background. Offsets in training make that part something to predict.
    """
    noise = torch.randn_like(latents)
    if noise_offset > 0:
        b, c, f = latents.shape[:3]
        noise = noise + noise_offset * torch.randn(b, c, f, 1, 1, device=latents.device, dtype=latents.dtype)
    return noise


def sample_training_timesteps(batch: int, num_frames: int, num_train_timesteps: int, cfg: TrainConfig,
                              stream_levels: torch.Tensor | None, device: torch.device | str,
                              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch's timesteps, (B,) or (B, F), and the (B, F) mask of its clean context frames (None without
    ``stream_layout``): each clip, with probability ``cfg.stream_layout``, is laid out as a stream window
    (:func:`stream_layout_timesteps` on ``stream_levels``), else sampled by :func:`sample_timesteps`."""
    timesteps = sample_timesteps(batch, num_frames, num_train_timesteps, cfg.per_frame_timesteps, device)
    if cfg.stream_layout <= 0:
        return timesteps, None
    stream, clean = stream_layout_timesteps(
        batch, num_frames, stream_levels, cfg.stream_frames_per_level, cfg.stream_context_frames,
        cfg.stream_clean_context, cfg.stream_timestep_jitter, num_train_timesteps, device)  # (B, F) x2
    pick = (torch.rand(batch, device=device) < cfg.stream_layout)[:, None]  # (B, 1)
    if timesteps.ndim == 1:
        timesteps = timesteps[:, None].expand(batch, num_frames)
    return torch.where(pick, stream, timesteps), pick & clean


def reference_focus_mask(reference_poses: torch.Tensor, latent_size: tuple[int, int], probability: float,
                         dilation: float, threshold: float = 0.1) -> torch.Tensor:
    """(B, 1, h, w) key masks for ``reference_focus``: with that probability per sample, the reference's
    person (its skeleton grown by ``dilation`` x the image size, at latent resolution), else everything.

    A curriculum for the reference attention: a ReferenceNet's tokens are mostly background (the person is
    ~10% of a frame), so a reader that has not learned where the person is averages over black and the
    reference's colours reach it ~10x diluted; restricted to the person, they reach it from the first step,
    which is what teaches both the values (carry the colours) and the keys (find the person) their job.
    """
    region = (pose_heatmap(reference_poses, latent_size, threshold=threshold, dilation=dilation, blur_sigma=0.0) > 0)
    drawn = torch.rand(region.shape[0], device=region.device) < probability
    return torch.where(drawn[:, None, None, None], region, torch.ones_like(region))


def compute_loss(batch: dict[str, torch.Tensor], pipe: TurboNextPipeline, model: torch.nn.Module,
                 noise_scheduler: DDPMScheduler, text: torch.Tensor, cfg: TrainConfig,
                 stream_levels: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of one batch; ``model`` is the (possibly accelerate-wrapped) :class:`TrainingModel`.

    With ``cfg.stream_layout`` > 0, ``stream_levels`` are the stream's timesteps (computed from the
    pipeline's scheduler config when None). Clean context frames enter as their clean latents, exactly
    as the stream holds its finished frames (timestep 0; ``add_noise`` at t=0 would still leave about 3%
    noise), and are left out of the loss: their input holds none of the noise, so predicting it is
    impossible, and the stream never uses a prediction for them; they act through temporal attention.
    """
    frames, poses, reference = batch["frames"], batch["poses"], batch["reference"]  # (B, F, 3, H, W) x2, (B, 3, H, W)
    b, f = frames.shape[:2]
    with torch.no_grad():
        latents = pipe.encode_images(frames.flatten(0, 1)).float()  # (B*F, 4, h, w)
        latents = latents.view(b, f, *latents.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, 4, F, h, w)
        ref_latents = pipe.encode_images(reference)  # (B, 4, h, w)
    noise = training_noise(latents, cfg.noise_offset)
    if cfg.stream_layout > 0 and stream_levels is None:
        stream_levels = stream_schedule_timesteps(pipe.scheduler.config, cfg.stream_num_inference_steps)
    timesteps, clean = sample_training_timesteps(b, f, noise_scheduler.config.num_train_timesteps, cfg,
                                                 stream_levels, latents.device)  # (B,) or (B, F); (B, F) or None
    noisy = _per_frame(noise_scheduler.add_noise, latents, noise, timesteps)  # (B, 4, F, h, w)
    if clean is not None:
        noisy = torch.where(clean[:, None, :, None, None], latents, noisy)  # context: the clean latents
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = _per_frame(noise_scheduler.get_velocity, latents, noise, timesteps)
    else:
        target = noise
    ref_poses = batch.get("reference_pose") if pipe.pose_guider.reads_reference_pose else None  # (B, 3, H, W)
    focus = {}
    if cfg.reference_focus > 0:
        focus["ref_key_mask"] = reference_focus_mask(batch["reference_pose"], tuple(latents.shape[-2:]),
                                                     cfg.reference_focus, cfg.reference_focus_dilation,
                                                     cfg.pose_heatmap_threshold)  # (B, 1, h, w)
    pred = model(noisy, timesteps, ref_latents, text.expand(b, -1, -1), poses, ref_poses, **focus)  # (B, 4, F, h, w)
    weights = None
    if cfg.pose_loss_weighting:
        weights = pose_loss_weights(poses, tuple(latents.shape[-2:]), cfg.pose_loss_strength,
                                    threshold=cfg.pose_heatmap_threshold, dilation=cfg.pose_heatmap_dilation,
                                    blur_sigma=cfg.pose_heatmap_blur)  # (B, 1, F, h, w)
    if clean is not None:
        noisy_frames = (~clean).to(pred.dtype)[:, None, :, None, None]  # (B, 1, F, 1, 1): 0 for clean context
        weights = noisy_frames if weights is None else weights * noisy_frames
    per_frame = timesteps if timesteps.ndim == 2 else timesteps[:, None].expand(b, f)  # (B, F)
    step_weights = None
    if cfg.high_noise_loss_weight:
        step_weights = high_noise_weights(per_frame, noise_scheduler.alphas_cumprod,
                                          cfg.high_noise_loss_weight)[:, None, :, None, None]  # (B, 1, F, 1, 1)
    loss = diffusion_loss(pred, target, weights, step_weights)
    if cfg.figure_color_loss > 0:
        abar = noise_scheduler.alphas_cumprod.to(per_frame.device)[per_frame.long()].float()
        abar = torch.where(per_frame >= cfg.figure_color_min_timestep, abar, torch.zeros_like(abar))
        if clean is not None:
            abar = torch.where(clean, torch.zeros_like(abar), abar)
        region = pose_heatmap(poses.flatten(0, 1), tuple(latents.shape[-2:]), threshold=cfg.pose_heatmap_threshold,
                              dilation=cfg.reference_focus_dilation, blur_sigma=0.0) > 0  # (B*F, 1, h, w)
        region = region.float().view(b, f, 1, *latents.shape[-2:]).permute(0, 2, 1, 3, 4)  # (B, 1, F, h, w)
        loss = loss + cfg.figure_color_loss * figure_color_loss(
            pred, noisy, latents, abar[:, None, :, None, None], region, noise_scheduler.config.prediction_type)
    return loss


def _trackers(cfg: TrainConfig) -> str | None:
    if cfg.report_to == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
            logger.warning("report_to=tensorboard but tensorboard is not installed (pip install tensorboard): "
                           "logging to %s/logs/train_log.jsonl only.", cfg.output_dir)
            return None
        return "tensorboard"
    return None


def _log_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) training as configured; returns the trained pipeline and the step reached."""
    cfg.validate()
    out = Path(cfg.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, mixed_precision=cfg.mixed_precision,
        log_with=_trackers(cfg), project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        # a trained ReferenceNet's last layers (after its last attn1) never get gradients
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=cfg.train_reference_unet)],
    )
    set_seed(cfg.seed)
    if cfg.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    weight_dtype = DTYPES[cfg.mixed_precision]

    # 1. model: frozen parts in the compute dtype, trainable ones in float32
    pipe = build_pipeline(cfg)
    checkpoints.load_init(cfg, pipe)
    params = configure_trainable(pipe, cfg.train_reference_unet, cfg.train_motion_modules, cfg.train_full_unet)
    frozen = [pipe.vae, pipe.encoder_vae, pipe.text_encoder] + ([] if cfg.train_reference_unet else [pipe.reference_unet])
    for module in frozen:
        if module is not None and weight_dtype != torch.float32:
            module.to(dtype=weight_dtype)
    pipe.to(accelerator.device)
    if cfg.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
        if cfg.train_reference_unet:
            pipe.reference_unet.enable_gradient_checkpointing()
    logger.info("trainable parameters: %.2fM", count_parameters(params) / 1e6)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # 1000 training steps, base's betas
    stream_levels = None
    if cfg.stream_layout > 0:  # the live stream's noise levels, from the scheduler config the export's LCM uses
        stream_levels = stream_schedule_timesteps(pipe.scheduler.config, cfg.stream_num_inference_steps)
        logger.info("stream layout (p=%.2f): levels %s, %d frame(s) per level, up to %d clean context frame(s); "
                    "clips of %d frames", cfg.stream_layout, stream_levels.tolist(), cfg.stream_frames_per_level,
                    cfg.stream_context_frames, cfg.num_frames)

    # 2. data, optimizer, LR schedule
    dataset = PoseVideoDataset(cfg.dataset_dir, cfg.resolution, cfg.num_frames, cfg.frame_stride, cfg.split,
                               cfg.reference_min_distance, cfg.color_augmentation, cfg.same_scene_reference,
                               cfg.hue_augmentation)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.train_batch_size, shuffle=True,
                                         num_workers=cfg.dataloader_num_workers)
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                  weight_decay=cfg.adam_weight_decay, eps=cfg.adam_epsilon)
    lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=cfg.max_train_steps * accelerator.num_processes)
    training_model = TrainingModel(pipe, cfg.train_reference_unet)
    model, optimizer, loader, lr_scheduler = accelerator.prepare(training_model, optimizer, loader, lr_scheduler)
    accelerator.register_save_state_pre_hook(checkpoints.skip_model_weights)
    accelerator.register_load_state_pre_hook(checkpoints.skip_model_loading)

    # 3. resume
    start_step = 0
    resume = checkpoints.resolve_resume(out, cfg.resume_from_checkpoint)
    if resume is not None:
        start_step = checkpoints.load_trained_parts(resume, pipe)
        accelerator.load_state(str(resume))
        logger.info("resumed from %s at step %d", resume, start_step)
    global_step = start_step
    steps_per_epoch = max(1, math.ceil(len(loader) / cfg.gradient_accumulation_steps))
    first_epoch = global_step // steps_per_epoch
    skip_batches = (global_step % steps_per_epoch) * cfg.gradient_accumulation_steps

    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
        accelerator.init_trackers("turbonext", config={k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool))})
    clip = None
    if cfg.validation_steps and accelerator.is_main_process:
        clip = pick_validation_clip(cfg.dataset_dir, cfg.validation_split or cfg.split, cfg.resolution, cfg.validation_num_frames)
    text = pipe.encode_prompt(cfg.prompt, accelerator.device)  # (1, 77, D), frozen

    def save_checkpoint(step: int) -> None:
        folder = out / f"{checkpoints.PREFIX}{step}"
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            checkpoints.prune_checkpoints(out, cfg.checkpoints_total_limit)
        accelerator.save_state(str(folder))  # optimizer, LR scheduler, RNG states (model weights skipped)
        if accelerator.is_main_process:
            checkpoints.save_trained_parts(folder, pipe, cfg, step)  # trainer_state.json last: marks it complete
        logger.info("saved %s", folder)

    # 4. loop
    progress = tqdm(total=cfg.max_train_steps, initial=global_step, desc="train", disable=not accelerator.is_local_main_process)
    last_loss, accumulated = None, 0.0
    epoch = first_epoch
    while global_step < cfg.max_train_steps:
        batches = accelerator.skip_first_batches(loader, skip_batches) if epoch == first_epoch and skip_batches else loader
        for batch in batches:
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = compute_loss(batch, pipe, model, noise_scheduler, text, cfg, stream_levels)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            accumulated += accelerator.gather(loss.detach()[None]).mean().item() / cfg.gradient_accumulation_steps
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            last_loss, accumulated = accumulated, 0.0
            logs = {"loss": last_loss, "lr": lr_scheduler.get_last_lr()[0]}
            progress.update(1)
            progress.set_postfix(loss=f"{last_loss:.4f}", lr=f"{logs['lr']:.2e}")
            if global_step % cfg.logging_steps == 0:
                accelerator.log(logs, step=global_step)
                if accelerator.is_main_process:
                    _log_jsonl(out / "logs" / "train_log.jsonl", {"step": global_step, **logs})
            if global_step % cfg.checkpointing_steps == 0 or global_step == cfg.max_train_steps:
                save_checkpoint(global_step)
            if clip is not None and global_step % cfg.validation_steps == 0:
                with accelerator.autocast():
                    scores = run_validation(pipe, clip, out / "validation", global_step,
                                            cfg.validation_num_inference_steps, cfg.seed, cfg.validation_fps)
                accelerator.log(scores, step=global_step)
                _log_jsonl(out / "logs" / "train_log.jsonl", {"step": global_step, **scores})
            if global_step >= cfg.max_train_steps:
                break
        epoch += 1
    progress.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(pipe=pipe, start_step=start_step, global_step=global_step, output_dir=out, last_loss=last_loss)


def cli_main(argv: list[str] | None = None) -> int:
    """``python training/train.py --config CONFIG.yaml [--resume latest] [key=value ...]``."""
    parser = argparse.ArgumentParser(description="Train TurboNext (pose guider + reference attention).")
    parser.add_argument("--config", help="YAML config (see training/configs/)")
    parser.add_argument("--resume", help="'latest' or a checkpoint folder (same as resume_from_checkpoint=...)")
    parser.add_argument("overrides", nargs="*", help="key=value settings that override the config file")
    args = parser.parse_args(argv)
    overrides = list(args.overrides) + ([f"resume_from_checkpoint={args.resume}"] if args.resume else [])
    try:
        cfg = load_config(args.config, overrides)
    except ValueError as err:
        parser.error(str(err))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = train(cfg)
    print(f"trained to step {result.global_step} (loss {result.last_loss}); checkpoints in {result.output_dir}")
    return 0
