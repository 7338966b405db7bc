"""Train the demo model's small AutoencoderTiny (TAESD class) on synthetic frames.

    python training/train_tiny_vae.py --out turbonext/demo/tiny_vae --size 256 --steps 600
    # optional second stage: rescale the latents to std ~1 and fine-tune
    python training/train_tiny_vae.py --out DIR2 --init-from turbonext/demo/tiny_vae --steps 150 \
        --lr 5e-4 --latent-l2 0 --latent-std-target 1.0

Writes config.json + diffusion_pytorch_model.safetensors (taesd layout), vae_report.json and
reconstruction.png (held-out original | reconstruction). See :mod:`turbonext.trainer.tiny_vae`.
"""

from __future__ import annotations

import argparse
import json

from turbonext.trainer.tiny_vae import train_tiny_vae


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, print the held-out metrics."""
    p = argparse.ArgumentParser(description="Train a small AutoencoderTiny on the synthetic benchmark's frames.")
    p.add_argument("--out", required=True, help="output folder (taesd layout)")
    p.add_argument("--size", type=int, default=256, help="frame size in pixels")
    p.add_argument("--crop", type=int, default=128, help="training crop around the figure (0: whole frames)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", type=int, default=32, help="channels of every level")
    p.add_argument("--encoder-blocks", type=_ints, default=(0, 2, 2, 2), help="e.g. 0,2,2,2")
    p.add_argument("--decoder-blocks", type=_ints, default=(2, 2, 2, 0), help="e.g. 2,2,2,0")
    p.add_argument("--identities", type=int, default=512, help="identities from the VAE's own identity stream")
    p.add_argument("--benchmark-identities", type=int, default=8, help="benchmark size (its validation and test identities, the last ones, are held out)")
    p.add_argument("--benchmark-seed", type=int, default=0)
    p.add_argument("--foreground-weight", type=float, default=3.0, help="extra pixel-loss weight on the figure")
    p.add_argument("--edge-weight", type=float, default=0.5, help="weight of the image-gradient L1 term")
    p.add_argument("--latent-l2", type=float, default=1e-3)
    p.add_argument("--latent-std-target", type=float, default=None, help="hold the latent std at this (e.g. 1.0)")
    p.add_argument("--latent-std-weight", type=float, default=0.1)
    p.add_argument("--act-fn", default="relu", help="activation (relu as in TAESD; silu avoids dead units)")
    p.add_argument("--color-augmentation", type=float, default=0.0,
                   help="probability that a training frame's RGB channels are shuffled and scaled (colours beyond "
                        "the synthetic palette)")
    p.add_argument("--init-from", default=None, help="fine-tune this saved AutoencoderTiny folder")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    report = train_tiny_vae(
        args.out, size=args.size, crop=args.crop or None, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, channels=(args.channels,) * 4, encoder_blocks=args.encoder_blocks,
        decoder_blocks=args.decoder_blocks, identities=range(args.identities),
        benchmark_identities=args.benchmark_identities, benchmark_seed=args.benchmark_seed,
        foreground_weight=args.foreground_weight, edge_weight=args.edge_weight,
        latent_l2=args.latent_l2, latent_std_target=args.latent_std_target,
        latent_std_weight=args.latent_std_weight, init_from=args.init_from, act_fn=args.act_fn,
        color_augmentation=args.color_augmentation,
        num_threads=args.threads, progress=not args.no_progress,
    )
    print(json.dumps({"held_out": report["held_out"], "train_time_s": report["train"]["train_time_s"],
                      "weights_bytes": report["model"]["weights_bytes"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
