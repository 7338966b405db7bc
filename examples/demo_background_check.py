"""Is the noisy background of some demo frames tied to a frame position, or to the noise draw?

Renders the demo inputs (a held-out identity) with the embedded model, or another pipeline folder, and
prints, per output frame, the mean brightness of the pixels that are black in the ground truth
(0 = a clean background). Variants: two seeds; windows of 4 frames instead of one window of 8; one
pose repeated 8 times; and seed 0's noise with each frame's per-channel mean (its constant,
lowest-frequency part) removed. If the same frame index is noisy across windows and poses but not
across seeds, the cause is that frame's initial noise, not its position in the window; if removing
the per-channel means cleans it, the few-step model fails to remove a constant offset of the noise.

    python examples/demo_background_check.py [--model turbonext-demo] [--frames 8] [--seeds 16]

``--seeds N`` adds a summary over seeds 0..N-1 (one window each) to compare models: the mean background
brightness over all frames, its 95th percentile and maximum, and how many frames exceed 12 (visibly
noisy; a clean frame is about 3-8).
"""

import argparse

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from turbonext import TurboNextPipeline
from turbonext.evaluation.metrics import background_brightness
from turbonext.jobs.driving_inputs import synthetic_demo_inputs


NOISY = 12.0  # background brightness (0-255) above which a frame looks noisy


def per_frame(frames, truth) -> list[float]:
    return [round(background_brightness(frame, gt), 1) for frame, gt in zip(frames, truth)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="turbonext-demo")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=0, help="also summarise seeds 0..N-1 (see above)")
    args = parser.parse_args()
    pipe = TurboNextPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    demo = synthetic_demo_inputs(size=256, num_frames=args.frames)
    ref_pose = demo.reference_pose if pipe.reads_reference_pose else None

    def render(seed, poses=demo.poses, **kwargs):
        return pipe(reference_image=demo.reference, pose_images=poses, generator=torch.Generator().manual_seed(seed),
                    reference_pose=ref_pose, **kwargs).frames[0]

    print("mean background brightness per frame (0-255; lower is cleaner)")
    print(f"seed 0, one window      {per_frame(render(0), demo.truth)}")
    print(f"seed 1, one window      {per_frame(render(1), demo.truth)}")
    print(f"seed 0, windows of 4    {per_frame(render(0, window_size=4, window_overlap=0), demo.truth)}")
    print(f"seed 0, first pose x{args.frames}  "
          f"{per_frame(render(0, poses=[demo.poses[0]] * args.frames), [demo.truth[0]] * args.frames)}")
    h = w = 256 // pipe.vae_scale_factor
    noise = randn_tensor((1, pipe.unet.config.in_channels, args.frames, h, w), generator=torch.Generator().manual_seed(0),
                         device=torch.device("cpu"), dtype=torch.float32)  # what the pipeline draws for seed 0
    means = noise.mean(dim=(3, 4))  # (1, C, F): each frame's per-channel offset
    print(f"seed 0, offsets removed {per_frame(render(0, latents=noise - means[..., None, None]), demo.truth)}")
    worst = means[0].abs().max(dim=0).values  # (F,)
    print(f"largest |per-channel mean| of each frame's noise: {[round(float(v), 3) for v in worst]} "
          f"(standard error {1 / h:.3f})")
    if args.seeds:
        values = np.array([per_frame(render(seed), demo.truth) for seed in range(args.seeds)])
        print(f"{args.seeds} seeds x {args.frames} frames: mean {values.mean():.2f}, p95 {np.percentile(values, 95):.1f}, "
              f"max {values.max():.1f}, frames > {NOISY} {int((values > NOISY).sum())} of {values.size}")


if __name__ == "__main__":
    main()
