"""Scheduler updates for frames that sit at different noise levels, applied in one tensor operation.

A diffusers scheduler's ``step`` is stateful (a step index) and takes one scalar timestep, so it cannot
advance a window whose frames are at staggered levels. :class:`StaggeredLCMSchedule` precomputes, per
level, the pipeline scheduler's own timesteps and coefficients and applies the same update per frame.

The model output is read by the scheduler's ``prediction_type``:

    epsilon:       x0 = (x - sqrt(1 - a_t) * out) / sqrt(a_t)
    v_prediction:  x0 = sqrt(a_t) * x - sqrt(1 - a_t) * out      (eps = sqrt(1 - a_t) * x + sqrt(a_t) * out)

and the update by the scheduler's kind:

    LCM (``LCMScheduler``):   denoised = c_out * x0 + c_skip * x
                              next = sqrt(a_next) * denoised + sqrt(1 - a_next) * noise   (fresh noise)
    DDIM (``DDIMScheduler``, eta 0, the AnimateAnyone family's sampler):
                              denoised = x0
                              next = sqrt(a_next) * x0 + sqrt(1 - a_next) * eps           (deterministic)

The last level's ``next`` is the denoised frame (LCM) or the DDIM step to the final alpha.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, LCMScheduler


UPDATES = ("lcm", "ddim")
PREDICTION_TYPES = ("epsilon", "v_prediction")


class StaggeredLCMSchedule:
    """Per-level coefficients for ``num_inference_steps`` levels (level 0 = noisiest).

    ``scheduler_config``: the pipeline scheduler's config (noise schedule, prediction type, spacing).
    ``update``: "lcm" (the default: turbonext's models are LCM-distilled) or "ddim" (deterministic DDIM steps, the
    sampler of the AnimateAnyone family's models; ``pipe.config.stream_update`` says which a model wants).
    """

    def __init__(self, scheduler_config, num_inference_steps: int = 4, device=None, update: str = "lcm"):
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}.")
        config = getattr(scheduler_config, "config", scheduler_config)
        self.update = update
        self.scheduler = (DDIMScheduler if self.update == "ddim" else LCMScheduler).from_config(config)
        self.prediction_type = self.scheduler.config.prediction_type
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"streaming supports prediction_type {PREDICTION_TYPES}; the scheduler says "
                             f"{self.prediction_type!r}")
        if self.scheduler.config.thresholding or self.scheduler.config.clip_sample:
            raise ValueError("streaming does not support thresholding or clip_sample in the scheduler config")
        self.scheduler.set_timesteps(num_inference_steps)
        self.num_levels = num_inference_steps
        timesteps = self.scheduler.timesteps.long()  # (K,) e.g. LCM 999, 759, 499, 259; trailing DDIM 999, 749, ...
        alphas = self.scheduler.alphas_cumprod
        a_t = alphas[timesteps]
        if self.update == "ddim":
            step = self.scheduler.config.num_train_timesteps // num_inference_steps
            prev = timesteps - step  # DDIM's previous timestep; below 0: the final alpha
            final = self.scheduler.final_alpha_cumprod
            a_next = torch.stack([alphas[p] if p >= 0 else final for p in prev.tolist()])
            c_skip, c_out = torch.zeros(len(timesteps)), torch.ones(len(timesteps))
        else:
            a_next = torch.cat([alphas[timesteps[1:]], torch.ones(1)])  # last level: no re-noising
            scalings = [self.scheduler.get_scalings_for_boundary_condition_discrete(int(t)) for t in timesteps]
            c_skip = torch.tensor([float(s[0]) for s in scalings])
            c_out = torch.tensor([float(s[1]) for s in scalings])
        self.timesteps = timesteps.to(device)
        self.table = torch.stack([a_t, a_next, c_skip, c_out]).float().to(device)  # (4, K)

    def coefficients(self, levels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-frame (a_t, a_next, c_skip, c_out) for ``levels`` (F,) of level indices."""
        table = self.table.to(levels.device)[:, levels]  # (4, F)
        return tuple(table)

    def frame_coefficients(self, levels: torch.Tensor, dtype=torch.float32) -> tuple[torch.Tensor, ...]:
        """:meth:`coefficients` shaped (1, 1, F, 1, 1) to broadcast over (B, C, F, H, W) latents."""
        return tuple(c.view(1, 1, -1, 1, 1).to(dtype) for c in self.coefficients(levels))

    def step(self, model_output: torch.Tensor, sample: torch.Tensor, levels: torch.Tensor | None, noise: torch.Tensor,
             coefficients=None):
        """Advance frames by one level. model_output/sample/noise: (B, C, F, H, W); levels: (F,) level indices
        (or None with ``coefficients``). ``noise`` only matters for LCM frames that are renoised (not at the
        last level); DDIM ignores it.

        ``coefficients``: :meth:`frame_coefficients` of ``levels``, when the caller has them already.
        Returns ``(next_sample, denoised)``; LCM frames at the last level get ``next_sample == denoised``.
        """
        a_t, a_next, c_skip, c_out = coefficients or self.frame_coefficients(levels, sample.dtype)
        if self.prediction_type == "v_prediction":
            x0 = a_t.sqrt() * sample - (1 - a_t).sqrt() * model_output
            eps = (1 - a_t).sqrt() * sample + a_t.sqrt() * model_output
        else:
            x0 = (sample - (1 - a_t).sqrt() * model_output) / a_t.sqrt()
            eps = model_output
        if self.update == "ddim":
            return a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps, x0
        denoised = c_out * x0 + c_skip * sample
        next_sample = a_next.sqrt() * denoised + (1 - a_next).sqrt() * noise
        return next_sample, denoised
