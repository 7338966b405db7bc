"""LCM updates for frames that sit at different noise levels, applied in one tensor operation.

``LCMScheduler.step`` is stateful (a step index) and takes one scalar timestep, so it cannot advance a
window whose frames are at staggered levels. :class:`StaggeredLCMSchedule` precomputes, per level,
the scheduler's own coefficients and applies the same update per frame:

    x0 = (x - sqrt(1 - a_t) * eps) / sqrt(a_t)
    denoised = c_out * x0 + c_skip * x
    next = sqrt(a_next) * denoised + sqrt(1 - a_next) * noise      (last level: next = denoised)
"""

from __future__ import annotations

import torch
from diffusers import LCMScheduler


class StaggeredLCMSchedule:
    """Per-level LCM coefficients for ``num_inference_steps`` levels (level 0 = noisiest)."""

    def __init__(self, scheduler_config, num_inference_steps: int = 4, device=None):
        self.scheduler = LCMScheduler.from_config(scheduler_config)
        if self.scheduler.config.prediction_type != "epsilon":
            raise ValueError("streaming supports epsilon-prediction models (SD1.5)")
        if self.scheduler.config.thresholding or self.scheduler.config.clip_sample:
            raise ValueError("streaming does not support thresholding or clip_sample in the scheduler config")
        self.scheduler.set_timesteps(num_inference_steps)
        self.num_levels = num_inference_steps
        timesteps = self.scheduler.timesteps.long()  # (K,) e.g. 999, 759, 499, 259
        alphas = self.scheduler.alphas_cumprod
        a_t = alphas[timesteps]
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

    def step(self, eps: torch.Tensor, sample: torch.Tensor, levels: torch.Tensor | None, noise: torch.Tensor,
             coefficients=None):
        """Advance frames by one level. eps/sample/noise: (B, C, F, H, W); levels: (F,) level indices (or None
        with ``coefficients``). ``noise`` only matters for frames that are renoised (not at the last level).

        ``coefficients``: :meth:`frame_coefficients` of ``levels``, when the caller has them already.
        Returns ``(next_sample, denoised)``; frames at the last level get ``next_sample == denoised``.
        """
        a_t, a_next, c_skip, c_out = coefficients or self.frame_coefficients(levels, sample.dtype)
        x0 = (sample - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        denoised = c_out * x0 + c_skip * sample
        next_sample = a_next.sqrt() * denoised + (1 - a_next).sqrt() * noise
        return next_sample, denoised
