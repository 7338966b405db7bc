"""Joining clips with interpolated transition frames in latent space (linear or spherical).

Two clips rendered separately (other references, other motions) meet with a jump; ``N`` frames interpolated
between the last latent frame of one and the first of the next make the cut a short dissolve. Spherical
interpolation (slerp) keeps the latents' norm, so the in-between frames stay as sharp as the clips' own
(a linear mix of two latents has a smaller norm: a greyer, blurrier frame half-way).
"""

from __future__ import annotations

import torch


TRANSITION_MODES = ("linear", "slerp")


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation between ``a`` and ``b`` (same shape) at ``t`` in [0, 1], over all their elements;
    linear where the two are (nearly) parallel."""
    a32, b32 = a.float().flatten(), b.float().flatten()
    na, nb = a32.norm(), b32.norm()
    cos = torch.dot(a32 / (na + eps), b32 / (nb + eps)).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        out = (1 - t) * a32 + t * b32
    else:
        out = (torch.sin((1 - t) * omega) * a32 + torch.sin(t * omega) * b32) / torch.sin(omega)
    return out.reshape(a.shape).to(a.dtype)


def transition_latents(end: torch.Tensor, start: torch.Tensor, num_frames: int, mode: str = "slerp") -> torch.Tensor:
    """``num_frames`` latent frames between ``end`` and ``start`` (each (B, C, h, w)), at t = i / (N + 1),
    excluding both; returns (B, C, N, h, w)."""
    if mode not in TRANSITION_MODES:
        raise ValueError(f"mode must be one of {TRANSITION_MODES}, got {mode!r}.")
    if end.shape != start.shape:
        raise ValueError(f"the clips' latents differ in shape: {tuple(end.shape)} vs {tuple(start.shape)} "
                         "(render them at the same size).")
    if num_frames < 0:
        raise ValueError(f"transition frames must be >= 0, got {num_frames}.")
    frames = []
    for i in range(1, num_frames + 1):
        t = i / (num_frames + 1)
        frames.append(slerp(end, start, t) if mode == "slerp" else (1 - t) * end + t * start)
    if not frames:
        return end[:, :, None][:, :, :0]
    return torch.stack(frames, dim=2)


def join_latent_clips(clips: list[torch.Tensor], transition_frames: int = 8, mode: str = "slerp") -> torch.Tensor:
    """Clips' latents (each (B, C, F_i, h, w)) -> one (B, C, sum F_i + (len - 1) * N, h, w) with ``N`` =
    ``transition_frames`` interpolated frames at every join."""
    if not clips:
        raise ValueError("no clips to join.")
    out = [clips[0]]
    for previous, clip in zip(clips[:-1], clips[1:]):
        if previous.ndim != 5 or clip.ndim != 5:
            raise ValueError("clip latents must have shape (B, C, F, h, w): render with output_type='latent'.")
        out += [transition_latents(previous[:, :, -1], clip[:, :, 0], transition_frames, mode), clip]
    return torch.cat(out, dim=2)
