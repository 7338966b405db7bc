"""Why a staggered stream window decays on a model not trained for it (issue 13), in two experiments.

1. Where the decay starts: streams of the demo (held-out identity 119, seed 0) with staggered windows of 4, 8
   and 16 frames and with the uniform layout, background brightness per frame (0-255 where the truth is black).
   The first frames of a staggered stream are denoised while the older slots still hold "ghost" frames (pure
   noise at the noisiest level); the decay starts with the first frames whose older neighbours are real,
   partly denoised frames.
2. One UNet call, no feedback: the offline clip's clean latents of 8 frames are noised to the staircase's levels
   (999, 999, 759, 759, 499, 499, 259, 259 from newest to oldest: window 8, 2 frames per level) with fixed noise
   and denoised in ONE call; each frame's predicted clean latent is compared with the true one. The same frames,
   the same noise, each level predicted in a window whose frames all share that level, is the control.

    python benchmarks/stream_drift_diagnosis.py   # about 3 minutes on 2 CPU cores
"""

import warnings

import numpy as np
import torch

from turbonext import TurboNextPipeline
from turbonext.evaluation.metrics import background_brightness
from turbonext.jobs.driving_inputs import synthetic_demo_inputs
from turbonext.schedulers.scheduling_staggered_lcm import StaggeredLCMSchedule


def stream_backgrounds(pipe, demo, window: int, schedule: str, per_level: int | None = None) -> list[float]:
    session = pipe.stream(reference_image=demo.reference, window=window, frames_per_level=per_level,
                          schedule=schedule, generator=torch.Generator().manual_seed(0))
    frames = [f for p in demo.poses for f in session.step(p)] + session.flush()
    return [background_brightness(f, t) for f, t in zip(frames, demo.truth)]


@torch.no_grad()
def one_call_errors(pipe, demo, window: int = 8, steps: int = 4) -> tuple[list[int], list[float], list[float]]:
    """Per frame of one staggered window: its timestep, the x0 error (RMS, latent units) of one staircase call,
    and of the control (every frame predicted in a window at its own level)."""
    clean = pipe(reference_image=demo.reference, pose_images=demo.poses[:window], num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(0), output_type="latent").frames  # (1, 4, F, h, w)
    schedule = StaggeredLCMSchedule(pipe.scheduler.config, steps)
    per_level = window // steps
    levels = torch.tensor([steps - 1 - j // per_level for j in range(window)])  # oldest first: 3,3,2,2,1,1,0,0
    timesteps = schedule.timesteps[levels]  # (W,)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    alphas = pipe.scheduler.alphas_cumprod

    def noised(ts: torch.Tensor) -> torch.Tensor:
        a = alphas[ts].view(1, 1, -1, 1, 1)
        return a.sqrt() * clean + (1 - a).sqrt() * noise

    def x0_error(x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        text = pipe.encode_prompt("", pipe.device).expand(window, -1, -1)
        poses = torch.stack([torch.from_numpy(np.asarray(p, np.float32) / 255).permute(2, 0, 1)
                             for p in demo.poses[:window]])
        eps = pipe.unet(x, ts[None], encoder_hidden_states=text, pose_features=pipe.pose_guider(poses),
                        cross_attention_kwargs={"reference": pipe.current_reference()}, return_dict=False)[0]
        a = alphas[ts].view(1, 1, -1, 1, 1)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        return ((x0 - clean) ** 2).mean(dim=(0, 1, 3, 4)).sqrt()  # (W,)

    staircase = x0_error(noised(timesteps), timesteps)
    control = torch.zeros(window)
    for level in range(steps):
        ts = torch.full((window,), int(schedule.timesteps[level]))
        control[levels == level] = x0_error(noised(ts), ts)[levels == level]
    return timesteps.tolist(), staircase.tolist(), control.tolist()


def main() -> None:
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    pipe = TurboNextPipeline.from_pretrained("turbonext-demo")
    pipe.set_progress_bar_config(disable=True)
    demo = synthetic_demo_inputs(size=256, num_frames=32, identity_index=119)
    print("1. background per frame (0-255), 32 frames")
    for window, schedule in ((4, "staggered"), (8, "staggered"), (16, "staggered"), (8, "uniform")):
        bg = stream_backgrounds(pipe, demo, window, schedule)
        print(f"   {schedule:9s} window {window:2d}: {[round(b) for b in bg]}")
    print("2. one staggered call (window 8) vs each level alone: x0 RMS error per frame (oldest first)")
    ts, staircase, control = one_call_errors(pipe, demo)
    print(f"   timestep   {ts}")
    print(f"   staircase  {[round(v, 3) for v in staircase]}")
    print(f"   one level  {[round(v, 3) for v in control]}")


if __name__ == "__main__":
    main()
