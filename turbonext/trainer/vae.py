"""Train a small ``AutoencoderTiny`` (TAESD architecture) as a plain autoencoder on dataset frames.

The synthetic demo model cannot download TAESD, and a random decoder shows nothing; this trains one
(encoder + decoder, 8x downsampling, 4 latent channels) on the frames of a dataset in the training
layout, and saves it in the ``madebyollin/taesd`` folder layout, so
``tiny_vae: <out_dir>`` in a training config (or ``from_components(tiny_vae=...)``) uses it.

Loss: L1 + MSE reconstruction, plus a small penalty keeping the latents near zero mean and unit
variance (diffusion assumes latents of roughly unit scale; TAESD's ``scaling_factor`` is 1.0).
``python training/train_vae.py --dataset-dir data/synthetic --out data/synthetic_taesd --max-minutes 10``.

Speed: measured ~2 s/step at 64 px, batch 8, 32 channels on 2 busy CPU cores (200 steps: blurry but
recognisable figures, L1 0.044); a usable 256 px decoder needs a GPU or a long CPU run.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from diffusers import AutoencoderTiny
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from turbonext.trainer.dataset import load_image, scan_scenes

logger = logging.getLogger(__name__)


class FrameDataset(Dataset):
    """Every target frame of a dataset as (3, H, W) in [-1, 1], randomly flipped left-right."""

    def __init__(self, root: str | Path, resolution: int, split: str | None = None):
        self.paths = [p for scene in scan_scenes(root, split) for p in scene.images]
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_image(self.paths[index], self.resolution, Image.Resampling.BICUBIC) * 2 - 1  # (3, H, W)
        return image.flip(-1) if bool(torch.rand(()) < 0.5) else image


def make_tiny_autoencoder(channels: int = 32, blocks: int = 1, latent_channels: int = 4) -> AutoencoderTiny:
    """A TAESD-shaped autoencoder: 4 stages (8x down/up), ``blocks`` residual blocks per stage."""
    return AutoencoderTiny(
        encoder_block_out_channels=(channels,) * 4, decoder_block_out_channels=(channels,) * 4,
        num_encoder_blocks=(1,) + (blocks,) * 3, num_decoder_blocks=(blocks,) * 3 + (1,),
        latent_channels=latent_channels, scaling_factor=1.0,
    )


def autoencoder_loss(vae: AutoencoderTiny, images: torch.Tensor, latent_weight: float = 1e-2) -> tuple[torch.Tensor, dict]:
    """images (N, 3, H, W) in [-1, 1] -> (loss, {"l1", "mse", "latent_std"})."""
    latents = vae.encode(images).latents  # (N, 4, H/8, W/8)
    recon = vae.decode(latents).sample  # (N, 3, H, W)
    l1, mse = F.l1_loss(recon, images), F.mse_loss(recon, images)
    scale = latents.mean() ** 2 + (latents.var() - 1) ** 2  # keep latents near N(0, 1) in scale
    loss = l1 + mse + latent_weight * scale
    return loss, {"l1": l1.item(), "mse": mse.item(), "latent_std": latents.std().item()}


def train_tiny_vae(dataset_dir: str | Path, out_dir: str | Path, resolution: int = 256, steps: int = 2000,
                   batch_size: int = 8, learning_rate: float = 1e-3, channels: int = 32, blocks: int = 1,
                   split: str | None = None, seed: int = 0, max_minutes: float | None = None) -> AutoencoderTiny:
    """Train and save (``save_pretrained``, safetensors, taesd layout) a tiny autoencoder; returns it."""
    torch.manual_seed(seed)
    device = PartialState().device
    dataset = FrameDataset(dataset_dir, resolution, split)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) >= batch_size)
    vae = make_tiny_autoencoder(channels, blocks).to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=learning_rate, weight_decay=0.0)
    lr_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=learning_rate * 0.05)
    start, step, logs = time.monotonic(), 0, {}
    progress = tqdm(total=steps, desc="train vae")
    while step < steps:
        for images in loader:
            loss, logs = autoencoder_loss(vae, images.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            lr_schedule.step()
            step += 1
            progress.update(1)
            progress.set_postfix(l1=f"{logs['l1']:.4f}", std=f"{logs['latent_std']:.2f}")
            if step >= steps or (max_minutes is not None and time.monotonic() - start > 60 * max_minutes):
                steps = step
                break
    progress.close()
    out = Path(out_dir)
    vae.eval().save_pretrained(out, safe_serialization=True)
    write_preview(vae, dataset, out / "reconstructions.png")
    logger.info("trained %d steps (l1 %.4f); saved to %s", step, logs.get("l1", float("nan")), out)
    return vae


@torch.no_grad()
def write_preview(vae: AutoencoderTiny, dataset: FrameDataset, path: Path, count: int = 4) -> None:
    """A PNG of ``count`` frames: originals on top, reconstructions below."""
    idx = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    images = torch.stack([load_image(dataset.paths[i], dataset.resolution, Image.Resampling.BICUBIC) for i in idx])
    recon = (vae.decode(vae.encode(images.to(vae.device) * 2 - 1).latents).sample.cpu() / 2 + 0.5).clamp(0, 1)
    grid = torch.cat([torch.cat(list(images), dim=2), torch.cat(list(recon), dim=2)], dim=1)  # (3, 2H, count*W)
    Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)


def cli_main(argv: list[str] | None = None) -> int:
    """``python training/train_vae.py --dataset-dir DIR --out DIR [...]``."""
    parser = argparse.ArgumentParser(description="Train a tiny TAESD-style autoencoder on dataset frames.")
    parser.add_argument("--dataset-dir", required=True, help="dataset in the <video>/<scene>/images layout")
    parser.add_argument("--out", required=True, help="output folder (taesd layout)")
    parser.add_argument("--split", default=None, help="a split of split.json (default: all scenes)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--channels", type=int, default=32, help="channels of every stage")
    parser.add_argument("--blocks", type=int, default=1, help="residual blocks per stage")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this much wall time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        train_tiny_vae(args.dataset_dir, args.out, args.resolution, args.steps, args.batch_size, args.lr,
                       args.channels, args.blocks, args.split, args.seed, args.max_minutes)
    except ValueError as err:
        parser.error(str(err))
    print(f"saved {args.out}; use it with tiny_vae: {args.out} (and encode_with_sd_vae: false)")
    return 0
