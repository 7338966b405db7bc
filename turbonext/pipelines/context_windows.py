"""Overlapping frame windows for clips longer than the motion module's window, blended without seams."""

from __future__ import annotations

import torch


def context_windows(num_frames: int, window: int = 16, overlap: int = 4) -> list[range]:
    """Cover ``num_frames`` with windows of ``window`` frames overlapping by ``overlap``.

    The last window is shifted back to end at the last frame, so every window is full-length
    (the motion modules always see ``window`` frames) whenever ``num_frames >= window``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window), got {overlap} for window {window}")
    if num_frames <= window:
        return [range(num_frames)]
    stride = window - overlap
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return [range(s, s + window) for s in starts]


def window_weights(length: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Blend weights (length,) that rise from the window's edges to its middle (never zero).

    Where windows overlap, predictions are averaged with these weights, so each frame leans on the
    window in which it sits most centrally and the hand-over between windows is gradual.
    """
    idx = torch.arange(length, device=device, dtype=dtype)
    return torch.minimum(idx + 1, length - idx)
