"""The training loss: MSE on the noise, optionally weighted up near the target skeleton (TrioPose).

TrioPose's pose-guided spatial loss weighting: a heatmap ``h`` in [0, 1] at latent resolution marks
where the target skeleton is (non-black pixels of the rendered pose map, grown and blurred), and
the per-element squared error is weighted by ``1 + strength * h``. Limbs are small in the image but
are what pose transfer gets wrong, so they get more of the gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pose_heatmap(
    poses: torch.Tensor,
    latent_size: tuple[int, int],
    threshold: float = 0.1,
    dilation: float = 0.03,
    blur_sigma: float = 1.0,
) -> torch.Tensor:
    """Pose maps (N, 3, H, W) in [0, 1] (skeleton on black) -> heatmaps (N, 1, h, w) in [0, 1].

    Args:
        latent_size: (h, w), the latent resolution.
        threshold: a pixel is skeleton where its brightest channel exceeds this (JPEG noise stays below).
        dilation: grow the skeleton by this fraction of the image size (a max filter) before downsampling.
        blur_sigma: Gaussian blur in latent cells after downsampling (0 = none).

    Each heatmap is scaled so that its maximum is 1 (an empty pose map gives all zeros).
    """
    mask = (poses.amax(dim=1, keepdim=True) > threshold).float()  # (N, 1, H, W)
    radius = int(round(dilation * max(poses.shape[-2:])))
    if radius > 0:
        mask = F.max_pool2d(mask, kernel_size=2 * radius + 1, stride=1, padding=radius)
    heat = F.interpolate(mask, size=latent_size, mode="area")  # (N, 1, h, w): skeleton coverage per cell
    if blur_sigma > 0:
        heat = gaussian_blur(heat, blur_sigma)
    peak = heat.amax(dim=(2, 3), keepdim=True)
    return torch.where(peak > 0, heat / peak.clamp_min(1e-8), torch.zeros_like(heat))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, h, w) with zero padding."""
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    kx = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    ky = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    x = F.conv2d(x, kx, padding=(0, radius), groups=channels)
    return F.conv2d(x, ky, padding=(radius, 0), groups=channels)


def pose_loss_weights(poses: torch.Tensor, latent_size: tuple[int, int], strength: float, **heatmap_kwargs) -> torch.Tensor:
    """Per-pixel weights ``1 + strength * heatmap``: poses (B, F, 3, H, W) -> (B, 1, F, h, w)."""
    batch, frames = poses.shape[:2]
    heat = pose_heatmap(poses.flatten(0, 1), latent_size, **heatmap_kwargs)  # (B*F, 1, h, w)
    heat = heat.view(batch, frames, 1, *latent_size).permute(0, 2, 1, 3, 4)  # (B, 1, F, h, w)
    return 1.0 + strength * heat


def high_noise_weights(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-timestep loss weights ``clamp(1 / SNR(t), 1, cap)``, same shape as ``timesteps``.

    The noise MSE counts an error in the clean image x0 with weight SNR(t) = abar / (1 - abar): at the noisy
    steps, where nothing of the target's colours is left in the input and the reference is the only
    source of them, a wrong colour costs almost nothing (SNR(999) ~ 0.005 on SD's schedule). Weighting
    those steps' noise error by 1/SNR, capped, turns them into an x0 error of weight ~1 (up to the cap);
    steps with SNR >= 1 keep weight 1.
    """
    abar = alphas_cumprod.to(timesteps.device)[timesteps.long()].float()
    return ((1.0 - abar) / abar).clamp(min=1.0, max=float(cap))


def diffusion_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                   step_weights: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between the predicted and true noise (B, C, F, h, w), in float32.

    With ``weights`` (broadcastable to the error, e.g. (B, 1, F, h, w)) the loss is the weighted mean
    ``sum(w * err) / sum(w)``: the scale of a plain MSE is kept (same learning rate), while the
    skeleton's share of the gradient grows with the weight.

    ``step_weights`` (broadcastable to the error, e.g. (B, 1, F, 1, 1), from :func:`high_noise_weights`)
    multiply the error without entering the normalisation: they change the loss's scale per timestep
    (a weighted mean would cancel one weight shared by a whole batch).
    """
    err = (pred.float() - target.float()) ** 2
    if step_weights is not None:
        err = err * step_weights.float()
    if weights is None:
        return err.mean()
    weights = weights.float().expand_as(err)
    return (weights * err).sum() / weights.sum()


def figure_color_loss(pred: torch.Tensor, noisy: torch.Tensor, latents: torch.Tensor, abar: torch.Tensor,
                      region: torch.Tensor, prediction_type: str = "epsilon", pool: int = 4) -> torch.Tensor:
    """The person's low-frequency x0 error: what only the reference can tell at a noisy step.

    ``pred``, ``noisy``, ``latents`` (B, C, F, h, w); ``abar`` (B, 1, F, 1, 1) the frames' alpha-bar (0 for frames
    left out); ``region`` (B, 1, F, h, w) in [0, 1], the person. The x0 estimate implied by ``pred`` minus the
    clean latents, masked to the person and averaged over ``pool`` x ``pool`` cells (a colour, not the texture
    or the noise's detail, which no reference can give), squared, averaged over the person's cells of the
    frames with ``abar`` > 0. 0 when no frame counts.
    """
    counted = (abar > 0).float()
    abar = abar.clamp_min(1e-6)
    if prediction_type == "v_prediction":
        x0 = abar.sqrt() * noisy - (1 - abar).sqrt() * pred
    else:
        x0 = (noisy - (1 - abar).sqrt() * pred) / abar.sqrt()
    err = (x0.float() - latents.float()) * region * counted  # (B, C, F, h, w)
    b, c, f, h, w = err.shape
    k = max(1, min(pool, h, w))
    cells = F.avg_pool2d(err.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w), k)  # (B*F, C, h/k, w/k)
    weight = F.avg_pool2d((region * counted).expand(b, 1, f, h, w).permute(0, 2, 1, 3, 4).reshape(b * f, 1, h, w), k)
    total = weight.sum()
    if total <= 0:
        return pred.sum() * 0.0
    return (cells ** 2).sum() / (total * c)
