"""Does the denoiser take a frame's colours from the reference or from its own noisy input? Teacher-forced, one step.

For each (scene, reference scene) pair: the truth's first ``--frames`` frames are encoded, noised to timestep t
(999, 759, 499: the demo's 4-step LCM levels) and given to the model once; its x0 estimate is decoded. Then the
same with the **reference alone** hue-rotated by 120 degrees (``--mode reference``, the default; the noisy input
keeps the true colours) or the reference and the truth rotated alike (``--mode both``). ``follow`` = mean
|x0(rotated) - x0(plain)| / mean |truth rotated - truth| over the person's pixels: in ``reference`` mode, how
much of a frame's colour the reference decides (1 = all of it, 0 = none); ``colour error`` = mean |x0 - truth|
per person pixel for the plain reference. ``--focus`` restricts the reference attention to the reference
person's tokens (training's ``reference_focus`` mask).

    python benchmarks/reference_x0_follow.py runs/v5 --pairs id096/walk_00:id096/dance_00,id097/walk_00:id097/dance_00
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from diffusers import DDPMScheduler


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.reference_check_io import load_frames, write_json  # noqa: E402
from turbonext import TurboNextPipeline  # noqa: E402
from turbonext.trainer.dataset import rotate_hue  # noqa: E402
from turbonext.trainer.loop import reference_focus_mask  # noqa: E402
from turbonext.trainer.training_model import TrainingModel  # noqa: E402


def x0_estimate(pipe, model, scheduler, truth, poses, reference, reference_pose, t, seed, focus) -> torch.Tensor:
    """The model's decoded x0 estimate (F, 3, H, W) in [0, 1] from ``truth`` noised to ``t``."""
    text = pipe.encode_prompt("", "cpu")
    with torch.no_grad():
        latents = pipe.encode_images(truth).float()  # (F, 4, h, w)
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed))
        timesteps = torch.full((1,), t)
        noisy = scheduler.add_noise(latents, noise, timesteps.expand(latents.shape[0]))
        mask = reference_focus_mask(reference_pose[None], tuple(latents.shape[-2:]), 1.0, 0.06) if focus else None
        pred = model(noisy.permute(1, 0, 2, 3)[None], timesteps, pipe.encode_images(reference[None]), text, poses[None],
                     reference_pose[None], ref_key_mask=mask)[0].permute(1, 0, 2, 3)
        abar = scheduler.alphas_cumprod[t]
        if scheduler.config.prediction_type == "v_prediction":
            x0 = abar.sqrt() * noisy - (1 - abar).sqrt() * pred
        else:
            x0 = (noisy - (1 - abar).sqrt() * pred) / abar.sqrt()
        return pipe.decode_latents(x0.permute(1, 0, 2, 3)[None])[0].permute(1, 0, 2, 3).add(1).div(2)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data", default="data/synth256_v2")
    parser.add_argument("--pairs", default="id096/walk_00:id096/dance_00,id097/walk_00:id097/dance_00",
                        help="scene:reference_scene pairs, comma-separated (the reference is the latter's first frame)")
    parser.add_argument("--timesteps", default="999,759,499")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--angle", type=float, default=120.0)
    parser.add_argument("--mode", choices=("reference", "both"), default="reference")
    parser.add_argument("--focus", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pipe = TurboNextPipeline.from_pretrained(args.model)
    model = TrainingModel(pipe)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    angle = math.radians(args.angle)
    rows = []
    for pair in args.pairs.split(","):
        scene, ref_scene = (Path(args.data) / name for name in pair.split(":"))
        truth = load_frames(sorted((scene / "images").iterdir())[: args.frames])
        poses = load_frames(sorted((scene / "poses").iterdir())[: args.frames])
        reference = load_frames(sorted((ref_scene / "images").iterdir())[:1])[0]
        reference_pose = load_frames(sorted((ref_scene / "poses").iterdir())[:1])[0]
        person = (truth.amax(dim=1, keepdim=True) > 0.1).float()

        def per_pixel(a, b):
            return float(((a - b).abs().mean(dim=1, keepdim=True) * person).sum() / person.sum())

        rotated_truth = rotate_hue(truth, angle)
        for t in (int(x) for x in args.timesteps.split(",")):
            plain = x0_estimate(pipe, model, scheduler, truth, poses, reference, reference_pose, t, args.seed, args.focus)
            turned = x0_estimate(pipe, model, scheduler, rotated_truth if args.mode == "both" else truth, poses,
                                 rotate_hue(reference, angle), reference_pose, t, args.seed, args.focus)
            rows.append({"pair": pair, "t": t, "follow": per_pixel(turned, plain) / per_pixel(rotated_truth, truth),
                         "colour_error": per_pixel(plain, truth)})
            print(f"{pair}  t={t}  follow {rows[-1]['follow']:.3f}  colour error {rows[-1]['colour_error']:.3f}")
    result = {"model": args.model, "mode": args.mode, "focus": args.focus, "angle": args.angle, "rows": rows}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
