"""Train the demo model's own small VAE: a diffusers ``AutoencoderTiny`` (TAESD class) on synthetic frames.

Real TAESD weights cannot be downloaded offline, so the embedded demo model ships a small
``AutoencoderTiny`` (8x spatial downsampling, 4 latent channels, ``scaling_factor=1.0``) trained
here as a plain autoencoder on frames drawn on the fly by :mod:`turbonext.synthetic`.

Data: random (identity, motion, clip, time) frames at ``size`` px, cropped to ``crop`` px around a
random foreground pixel (training is fully convolutional; crops save CPU time). Identities come
from the VAE's own identity stream (:data:`VAE_IDENTITY_SEED`) plus the benchmark's *training*
identities; the benchmark's held-out identities (the last two of ``benchmark_identities`` in the
dataset seeded ``benchmark_seed``, see :func:`turbonext.synthetic.split_of`) and the held-out
motion ("kick") are never trained on. Evaluation uses exactly those held-out identities, on every
motion, at full frame size.

Loss: foreground-weighted L1 + MSE on pixels, an L1 term on image gradients (sharper edges), and
two light latent regularisers: a small L2 on the latents (unit-ish scale for the diffusion model)
and a penalty on ``|z| > latent_bound`` (the decoder squashes inputs with ``tanh(z/3)*3``).

Saved with ``save_pretrained`` (taesd layout: config.json + diffusion_pytorch_model.safetensors),
plus ``vae_report.json`` and ``reconstruction.png`` (original | reconstruction, held-out frames).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from turbonext.evaluation.metrics import psnr, ssim
from turbonext.synthetic.dataset import HELD_OUT_MOTION, held_out_counts, identity_seed
from turbonext.synthetic.figure import Identity, draw_figure
from turbonext.synthetic.motion import MOTIONS, sample_clip
from turbonext.utils.images import side_by_side


VAE_IDENTITY_SEED = 0x7AE  # first element of the VAE's own identity stream (disjoint from benchmark seeds)
CLIP_FRAMES = 32  # clips are placed so that frames 0..CLIP_FRAMES-1 stay in frame; t is drawn in that range
FOREGROUND_LEVEL = 0.1  # a pixel is foreground when its brightest channel exceeds this (in [0, 1])


def held_out_identity_seeds(benchmark_identities: int = 8, benchmark_seed: int = 0) -> list[int]:
    """:meth:`Identity.random` seeds of the benchmark's held-out identities: its validation and test ones
    (the last ``sum(held_out_counts(benchmark_identities))``, as ``turbonext synthetic`` splits by default)."""
    first = benchmark_identities - sum(held_out_counts(benchmark_identities))
    return [identity_seed(benchmark_seed, i) for i in range(first, benchmark_identities)]


def training_identities(
    identities: Sequence[int], benchmark_identities: int = 8, benchmark_seed: int = 0
) -> list[Identity]:
    """The VAE's training people: ``identities`` indices of the VAE identity stream plus the
    benchmark's training identities, never one of its held-out identities."""
    held = set(held_out_identity_seeds(benchmark_identities, benchmark_seed))
    seeds = [identity_seed(VAE_IDENTITY_SEED, int(i)) for i in identities]
    seeds += [identity_seed(benchmark_seed, i)
              for i in range(benchmark_identities - sum(held_out_counts(benchmark_identities)))]
    kept = [s for s in dict.fromkeys(seeds) if s not in held]
    if not kept:
        raise ValueError("no training identities left after removing the benchmark's held-out identities.")
    return [Identity.random(s) for s in kept]


def random_frame(ident: Identity, motion: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One frame of ``ident`` doing ``motion`` at a random clip placement and time: uint8 (size, size, 3)."""
    clip = sample_clip(motion, ident.shape, size, CLIP_FRAMES, rng)
    keypoints, depth = clip.keypoints(float(rng.uniform(0, CLIP_FRAMES - 1)))  # (17, 3), (17,)
    return np.asarray(draw_figure(ident, keypoints, size, depth=depth, scale=clip.scale))


def recolor(frame: np.ndarray, rng: np.random.Generator, gain: tuple[float, float] = (0.6, 1.4)) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 with its RGB channels in a random order, each scaled by a random gain in
    ``gain`` (black stays black): the same figure in colours the palette does not have."""
    order = rng.permutation(3)
    scale = rng.uniform(*gain, size=3)
    return np.clip(frame[..., order].astype(np.float32) * scale, 0, 255).round().astype(np.uint8)


def crop_around_figure(frame: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A ``crop`` x ``crop`` window of ``frame`` (H, W, 3) centred near a random foreground pixel."""
    h, w = frame.shape[:2]
    if crop >= min(h, w):
        return frame
    ys, xs = np.nonzero(frame.max(axis=-1) > FOREGROUND_LEVEL * 255)
    if len(ys) == 0:
        cy, cx = h // 2, w // 2
    else:
        k = int(rng.integers(len(ys)))
        cy, cx = int(ys[k]), int(xs[k])
    y0 = int(np.clip(cy - crop // 2 + rng.integers(-crop // 8, crop // 8 + 1), 0, h - crop))
    x0 = int(np.clip(cx - crop // 2 + rng.integers(-crop // 8, crop // 8 + 1), 0, w - crop))
    return frame[y0:y0 + crop, x0:x0 + crop]


def to_tensor(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) frames -> float (N, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    return x / 127.5 - 1.0


def to_images(x: torch.Tensor) -> list[np.ndarray]:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (H, W, 3) frames."""
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
    return list(arr)


def autoencoder_loss(
    x: torch.Tensor, recon: torch.Tensor, z: torch.Tensor, foreground_weight: float = 3.0,
    edge_weight: float = 0.5, latent_l2: float = 1e-3, latent_bound: float = 2.5,
    latent_std_target: float | None = None, latent_std_weight: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction + latent regularisation loss; x, recon (N, 3, H, W) in [-1, 1], z (N, 4, H/8, W/8).

    Latents: ``latent_l2 * mean(z^2)`` (pulls the scale down), ``mean(relu(|z| - latent_bound)^2)``,
    and, with ``latent_std_target``, ``latent_std_weight * (std(z) - latent_std_target)^2`` (holds
    the batch's latent std at a target, e.g. 1.0, for the diffusion model)."""
    fg = (x.amax(dim=1, keepdim=True) > FOREGROUND_LEVEL * 2 - 1).float()  # (N, 1, H, W)
    weight = 1.0 + foreground_weight * fg
    weight = weight / weight.mean()
    diff = recon - x
    l1 = (diff.abs() * weight).mean()
    mse = (diff.pow(2) * weight).mean()
    edge = (diff[..., 1:, :] - diff[..., :-1, :]).abs().mean() + (diff[..., :, 1:] - diff[..., :, :-1]).abs().mean()
    l2 = z.pow(2).mean()
    bound = F.relu(z.abs() - latent_bound).pow(2).mean()
    loss = l1 + mse + edge_weight * edge + latent_l2 * l2 + bound
    if latent_std_target is not None:
        loss = loss + latent_std_weight * (z.std() - latent_std_target).pow(2)
    return loss, {"l1": l1.item(), "mse": mse.item(), "edge": edge.item(), "z2": l2.item(), "bound": bound.item()}


@torch.no_grad()
def rescale_latents(vae, factor: float) -> None:
    """Multiply ``vae``'s latents by ``factor`` in place: the encoder's last conv is scaled by it, the
    decoder's first conv by its inverse. Exact for the encoder; approximate for the decoder, which
    squashes its input with ``tanh(z / 3) * 3`` first (near-linear for |z| < ~1.5), so fine-tune after."""
    enc_out = vae.encoder.layers[-1]  # Conv2d(C, 4)
    dec_in = vae.decoder.layers[0]  # Conv2d(4, C)
    enc_out.weight.mul_(factor)
    if enc_out.bias is not None:
        enc_out.bias.mul_(factor)
    dec_in.weight.div_(factor)


def held_out_frames(size: int, per_motion: int = 2, benchmark_identities: int = 8, benchmark_seed: int = 0,
                    seed: int = 1234) -> list[np.ndarray]:
    """Evaluation frames: each held-out benchmark identity x every motion x ``per_motion`` frames."""
    rng = np.random.default_rng([int(seed), 0xE7A1])
    frames = []
    for s in held_out_identity_seeds(benchmark_identities, benchmark_seed):
        ident = Identity.random(s)
        for motion in MOTIONS:
            frames += [random_frame(ident, motion, size, rng) for _ in range(per_motion)]
    return frames


@torch.no_grad()
def evaluate(vae, frames: Sequence[np.ndarray], batch_size: int = 4) -> tuple[dict, list[np.ndarray]]:
    """Held-out metrics of ``vae`` on uint8 frames, and the reconstructions."""
    recons, latents = [], []
    for start in range(0, len(frames), batch_size):
        x = to_tensor(frames[start:start + batch_size])  # (B, 3, H, W)
        z = vae.encode(x).latents * vae.config.scaling_factor  # (B, 4, H/8, W/8)
        latents.append(z)
        recons += to_images(vae.decode(z / vae.config.scaling_factor).sample)
    z = torch.cat(latents)
    fg_err = []
    for r, g in zip(recons, frames):
        mask = g.max(axis=-1) > FOREGROUND_LEVEL * 255
        fg_err.append(float(np.mean((r[mask] / 255.0 - g[mask] / 255.0) ** 2)) if mask.any() else 0.0)
    metrics = {
        "psnr": float(np.mean([psnr(r, g) for r, g in zip(recons, frames)])),
        "ssim": float(np.mean([ssim(r, g) for r, g in zip(recons, frames)])),
        "psnr_foreground": float(-10 * np.log10(max(np.mean(fg_err), 1e-10))),
        "latent_mean": float(z.mean()),
        "latent_std": float(z.std()),
        "latent_channel_std": [float(v) for v in z.std(dim=(0, 2, 3))],
        "latent_abs_max": float(z.abs().max()),
        "latent_shape": list(z.shape[1:]),
        "num_frames": len(frames),
    }
    return metrics, recons


def reconstruction_grid_png(frames: Sequence[np.ndarray], recons: Sequence[np.ndarray], path: Path,
                            columns: int = 3) -> None:
    """A grid of (original | reconstruction) pairs, ``columns`` pairs per row, written as PNG."""
    pairs = side_by_side([Image.fromarray(f) for f in frames], [Image.fromarray(r) for r in recons])  # (H, 2W, 3)
    rows = [pairs[i:i + columns] for i in range(0, len(pairs), columns)]
    rows[-1] = rows[-1] + [np.zeros_like(pairs[0])] * (columns - len(rows[-1]))
    grid = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    Image.fromarray(grid).save(path, optimize=True)


def train_tiny_vae(
    out_dir: str | Path,
    size: int = 256,
    crop: int | None = 128,
    steps: int = 600,
    batch_size: int = 8,
    lr: float = 2e-3,
    seed: int = 0,
    channels: Sequence[int] = (32, 32, 32, 32),
    encoder_blocks: Sequence[int] = (0, 2, 2, 2),
    decoder_blocks: Sequence[int] = (2, 2, 2, 0),
    identities: Sequence[int] = range(512),
    benchmark_identities: int = 8,
    benchmark_seed: int = 0,
    foreground_weight: float = 3.0,
    edge_weight: float = 0.5,
    latent_l2: float = 1e-3,
    latent_std_target: float | None = None,
    latent_std_weight: float = 0.1,
    init_from: str | Path | None = None,
    act_fn: str = "relu",
    color_augmentation: float = 0.0,
    eval_per_motion: int = 2,
    png_frames: int = 6,
    num_threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Train an ``AutoencoderTiny`` on synthetic frames and save it (taesd layout) with a report.

    Args:
        out_dir: output folder: config.json, diffusion_pytorch_model.safetensors, vae_report.json,
            reconstruction.png.
        size: frame size in pixels (frames are drawn at this size, evaluated at this size).
        crop: training crop in pixels around the figure; None or >= size trains on whole frames.
        steps, batch_size, lr: AdamW steps (cosine schedule, 3% warm-up), frames per step, peak LR.
        seed: seeds the weights and the training frames.
        channels: per-level channels (AutoencoderTiny needs them all equal).
        encoder_blocks, decoder_blocks: blocks per level (level 0 of the encoder / level 3 of the
            decoder run at full resolution, the expensive part on CPU).
        identities: indices into the VAE identity stream (plus the benchmark's training identities).
        benchmark_identities, benchmark_seed: the benchmark whose last two identities are held out.
        foreground_weight, edge_weight, latent_l2, latent_std_target, latent_std_weight: loss
            weights (see :func:`autoencoder_loss`).
        init_from: fine-tune this saved AutoencoderTiny instead of a new one (channels and blocks
            are then ignored); with ``latent_std_target`` its latents are first rescaled
            (:func:`rescale_latents`) so that the held-out latent std starts at the target.
        act_fn: the activation of a new VAE ("relu" as in TAESD; "silu" has no dead units).
        color_augmentation: the probability that a training frame is recoloured (:func:`recolor`): its RGB
            channels shuffled and scaled, so the VAE learns colours beyond the synthetic palette (a codec
            should keep any colour; the benchmark's off-palette identities are never drawn).
        eval_per_motion: held-out frames per (identity, motion) for the metrics.
        png_frames: held-out pairs in the side-by-side PNG.
        num_threads: torch CPU threads (None leaves it).
        progress: show a tqdm bar.

    Returns:
        The report written to vae_report.json, plus "loss_history" (the loss of every step) and
        "vae" (the trained ``AutoencoderTiny``, in eval mode).
    """
    from diffusers import AutoencoderTiny

    if len(set(channels)) != 1:
        raise ValueError(f"AutoencoderTiny needs equal channels on every level; got {tuple(channels)}.")
    if size % 8 or (crop is not None and crop < size and crop % 8):
        raise ValueError(f"size and crop must be multiples of 8; got size={size}, crop={crop}.")
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng([int(seed), 0x7AE])
    people = training_identities(identities, benchmark_identities, benchmark_seed)
    motions = [m for m in MOTIONS if m != HELD_OUT_MOTION]
    frames = held_out_frames(size, eval_per_motion, benchmark_identities, benchmark_seed)
    if init_from is not None:
        vae = AutoencoderTiny.from_pretrained(init_from)
        if latent_std_target is not None:
            with torch.no_grad():
                z = torch.cat([vae.encode(to_tensor(frames[i:i + 4])).latents for i in range(0, len(frames), 4)])
            rescale_latents(vae, latent_std_target / float(z.std()))
    else:
        vae = AutoencoderTiny(
            encoder_block_out_channels=tuple(channels), decoder_block_out_channels=tuple(channels),
            num_encoder_blocks=tuple(encoder_blocks), num_decoder_blocks=tuple(decoder_blocks),
            latent_channels=4, scaling_factor=1.0, act_fn=act_fn,
        )
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=1e-4, betas=(0.9, 0.99))
    warmup = max(1, int(0.03 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    crop_px = size if crop is None else min(crop, size)

    history: list[float] = []
    data_time = 0.0
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="tiny VAE", disable=not progress)
    for step in bar:
        t0 = time.perf_counter()
        batch = []
        for _ in range(batch_size):
            ident = people[int(rng.integers(len(people)))]
            frame = random_frame(ident, motions[int(rng.integers(len(motions)))], size, rng)
            if color_augmentation > 0 and rng.random() < color_augmentation:
                frame = recolor(frame, rng)
            batch.append(crop_around_figure(frame, crop_px, rng))
        x = to_tensor(batch)  # (B, 3, crop, crop)
        data_time += time.perf_counter() - t0
        z = vae.encode(x).latents  # (B, 4, crop/8, crop/8)
        recon = vae.decode(z).sample  # (B, 3, crop, crop)
        loss, parts = autoencoder_loss(x, recon, z, foreground_weight, edge_weight, latent_l2,
                                       latent_std_target=latent_std_target, latent_std_weight=latent_std_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        schedule.step()
        history.append(float(loss.item()))
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{np.mean(history[-10:]):.4f}", l1=f"{parts['l1']:.3f}", z2=f"{parts['z2']:.2f}")
    train_time = time.perf_counter() - start

    vae.eval()
    metrics, recons = evaluate(vae, frames)
    vae.save_pretrained(out, safe_serialization=True)
    pick = np.linspace(0, len(frames) - 1, num=min(png_frames, len(frames))).round().astype(int)
    reconstruction_grid_png([frames[i] for i in pick], [recons[i] for i in pick], out / "reconstruction.png")
    report = {
        "held_out": metrics,
        "held_out_identity_seeds": held_out_identity_seeds(benchmark_identities, benchmark_seed),
        "train": {
            "steps": steps, "batch_size": batch_size, "lr": lr, "size": size, "crop": crop_px, "seed": seed,
            "identities": len(people), "motions": motions, "train_time_s": round(train_time, 1),
            "data_time_s": round(data_time, 1), "threads": torch.get_num_threads(),
            "loss_first10": float(np.mean(history[:10])), "loss_last10": float(np.mean(history[-10:])),
            "init_from": None if init_from is None else str(init_from), "color_augmentation": color_augmentation,
            "loss_weights": {"foreground": foreground_weight, "edge": edge_weight, "latent_l2": latent_l2,
                             "latent_std_target": latent_std_target, "latent_std_weight": latent_std_weight},
        },
        "model": {
            "channels": list(channels), "encoder_blocks": list(encoder_blocks), "decoder_blocks": list(decoder_blocks),
            "parameters": int(sum(p.numel() for p in vae.parameters())),
            "weights_bytes": (out / "diffusion_pytorch_model.safetensors").stat().st_size,
        },
        "loss_every_10_steps": [round(v, 5) for v in history[::10]],
    }
    (out / "vae_report.json").write_text(json.dumps(report, indent=1) + "\n")
    return {**report, "loss_history": history, "vae": vae}
