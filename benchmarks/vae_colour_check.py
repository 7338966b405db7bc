"""How much colour a tiny VAE keeps, on training-palette and off-palette identities (issue 13, part 2).

Encodes and decodes the first frames of every scene of a split and reports PSNR over the figure's pixels
(the ground truth's foreground) and the per-pixel colour error there, separately for the identities dressed
in training colours and those dressed off the training palette (`identity.json` "palette").

    python benchmarks/vae_colour_check.py VAE_FOLDER [VAE_FOLDER ...] --data data/long128 --split test_identity
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderTiny

from turbonext.evaluation.metrics import figure_color_error, foreground_mask
from turbonext.synthetic.dataset import load_scene, load_split
from turbonext.utils.images import image_to_tensor, tensor_to_pil


@torch.no_grad()
def round_trip(vae: AutoencoderTiny, frames: list) -> list:
    x = torch.stack([image_to_tensor(f) for f in frames]) * 2 - 1  # (F, 3, H, W) in [-1, 1]
    return tensor_to_pil((vae.decode(vae.encode(x).latents).sample + 1) / 2)


def figure_psnr(pred, gt) -> float:
    p, g = np.asarray(pred, np.float64) / 255, np.asarray(gt, np.float64) / 255
    mask = foreground_mask(gt)
    mse = ((p[mask] - g[mask]) ** 2).mean()
    return float(10 * np.log10(1 / max(mse, 1e-10)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vae", nargs="+", help="AutoencoderTiny folders")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test_identity")
    parser.add_argument("--frames", type=int, default=4, help="frames per scene")
    args = parser.parse_args()
    root = Path(args.data)
    scenes = load_split(root)[args.split]
    palette = {s: json.loads((root / s.split("/")[0] / "identity.json").read_text()).get("palette", "train")
               for s in scenes}
    for folder in args.vae:
        vae = AutoencoderTiny.from_pretrained(folder).eval()
        scores: dict[str, list] = {"train": [], "held_out": []}
        for scene in scenes:
            frames = load_scene(root / scene, args.frames)[0]
            for pred, gt in zip(round_trip(vae, frames), frames):
                scores[palette[scene]].append((figure_psnr(pred, gt), figure_color_error(pred, gt)))
        for name, values in scores.items():
            if values:
                psnr, err = np.mean(values, axis=0)
                print(f"{folder}: {name:8s} palette, {len(values)} frames: figure PSNR {psnr:.2f} dB, "
                      f"colour error per figure pixel {err:.3f}")


if __name__ == "__main__":
    main()
