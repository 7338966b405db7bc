"""Frame windows for clips longer than the motion module's window: blended overlaps, or chained windows.

Two ways to render a clip longer than one window (``pipe(..., long_video=...)``):

* ``"blend"``: overlapping windows cover the whole clip at every denoising step and their predictions are
  averaged where they overlap (:func:`context_windows`, :func:`window_weights`). Every frame is denoised
  together with all the others, so the clip is one piece.
* ``"chain"``: the clip is rendered window after window (:func:`chained_windows`, :func:`denoise_chained`).
  Each window holds the last frames of the windows before it, finished, as context, and new frames that
  are denoised from noise next to them. The window never grows, whatever the clip's length, and the
  context carries the picture across every join.

Chained context frames are given to the model in one of two ways (``chain_context``):

* ``"renoise"``: at every step the finished context latents are noised afresh to that step's level, so every
  frame in the window shares one noise level: the layout of models trained on one noise level per clip
  (``stream_schedule: "uniform"``, every public checkpoint, the demo model), and what the uniform stream does.
  At the window's last step the model's clean estimate of the context frames, made next to the new frames,
  is cross-faded into them (weights rising towards the new frames), so the hand-over is gradual: the
  demo's seam ratio 1.09 -> 1.05 at no extra cost (turbonext/demo/README.md, "Long videos by chaining").
* ``"clean"``: the context stays clean with a per-frame timestep of 0 next to the noisy new frames: the layout
  of models trained on per-frame noise levels with clean context (``stream_schedule: "staggered"``).
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers.utils.torch_utils import randn_tensor


LONG_VIDEO_MODES = ("blend", "chain")
CHAIN_CONTEXTS = ("renoise", "clean")


def _check_window(window: int, overlap: int, what: str = "overlap") -> None:
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"{what} must be in [0, window), got {overlap} for window {window}")


def context_windows(num_frames: int, window: int = 16, overlap: int = 4) -> list[range]:
    """Cover ``num_frames`` with windows of ``window`` frames overlapping by ``overlap``.

    The last window is shifted back to end at the last frame, so every window is full-length
    (the motion modules always see ``window`` frames) whenever ``num_frames >= window``.
    """
    _check_window(window, overlap)
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


def chained_windows(num_frames: int, window: int = 16, context: int = 4) -> list[tuple[range, int]]:
    """The windows of a chained clip, in rendering order: ``(frames, C)``, the window's frames and how many of
    them, at its start, are context (finished by earlier windows); the others are new.

    The first window has no context; each later one carries ``context`` frames and ``window - context`` new
    ones, except the last, which carries more context so that it is full-length too. So every window has
    ``window`` frames whenever ``num_frames >= window``, and every frame is new in exactly one window.
    """
    _check_window(window, context, "context")
    if num_frames <= window:
        return [(range(num_frames), 0)]
    out, start = [(range(0, window), 0)], window
    while start < num_frames:
        stop = min(start + window - context, num_frames)
        out.append((range(stop - window, stop), window - (stop - start)))
        start = stop
    return out


def _predicted_clean(scheduler, noisy: torch.Tensor, pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor | None:
    """The clean latents the model's ``pred`` implies for ``noisy`` (noised with ``scheduler.add_noise`` at ``t``):
    ``noisy = a * x0 + b * noise``, with a and b read back from ``add_noise`` itself. None for a prediction type
    this does not know."""
    one, zero = torch.ones(1, device=noisy.device), torch.zeros(1, device=noisy.device)
    a = scheduler.add_noise(one, zero, t.reshape(1)).float()
    b = scheduler.add_noise(zero, one, t.reshape(1)).float()
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind == "epsilon":
        return (noisy.float() - b * pred.float()) / a
    if kind == "v_prediction":
        return a * noisy.float() - b * pred.float()
    if kind == "sample":
        return pred.float()
    return None


def denoise_chained(
    predict: Callable[[torch.Tensor, torch.Tensor, range], torch.Tensor],
    scheduler,
    latents: torch.Tensor,
    num_inference_steps: int,
    window: int = 16,
    context: int = 4,
    context_mode: str = "renoise",
    generator: torch.Generator | list[torch.Generator] | None = None,
    on_step: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Denoise a clip window after window (:func:`chained_windows`); returns its clean latents.

    Args:
        predict: ``predict(model_input, timestep, frames) -> noise prediction`` for one window: ``model_input``
            (B, C, W, h, w) already scaled by the scheduler, ``timestep`` a 0-d tensor (one level for the window)
            or (1, W) (one per frame), ``frames`` the window's frame indices in the clip (for its poses).
        scheduler: a diffusers scheduler; it is set up afresh (``set_timesteps``) for every window.
        latents: (B, C, F, h, w) the initial noise of every frame, already scaled by ``init_noise_sigma``; each
            frame's noise is used in the window where it is new.
        window / context: frames per window, and the least number of them that are context (see above).
        context_mode: "renoise" or "clean" (the module docstring says which model wants which); "renoise" also
            cross-fades each window's context frames towards the model's estimate of them at its last step.
        generator: for the context's fresh noise ("renoise") and the scheduler's steps.
        on_step: ``on_step(step, t, new_latents) -> new_latents`` after every step (the step counts across
            windows); may return replacements.
        should_stop: checked before every step; True returns at once, the frames not finished yet as they are.
    """
    if context_mode not in CHAIN_CONTEXTS:
        raise ValueError(f"chain_context must be one of {CHAIN_CONTEXTS}, got {context_mode!r}.")
    out = latents.clone()
    step = 0
    for frames, c in chained_windows(latents.shape[2], window, context):
        scheduler.set_timesteps(num_inference_steps, device=latents.device)
        new = slice(frames.start + c, frames.stop)
        x = out[:, :, new]  # (B, C, W - c, h, w): noise, denoised below
        clean = out[:, :, frames.start:frames.start + c]  # (B, C, c, h, w): finished by earlier windows
        last = scheduler.timesteps[-1]
        for t in scheduler.timesteps:
            if should_stop is not None and should_stop():
                out[:, :, new] = x
                return out
            timestep = t
            if c == 0:
                model_input = scheduler.scale_model_input(x, t)
            elif context_mode == "renoise":  # the context at this step's noise level, with fresh noise
                noise = randn_tensor(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
                noisy = scheduler.add_noise(clean, noise, t.reshape(1))
                model_input = scheduler.scale_model_input(torch.cat([noisy, x], dim=2), t)
            else:  # clean context, labelled with timestep 0
                model_input = torch.cat([clean, scheduler.scale_model_input(x, t)], dim=2)
                timestep = torch.cat([torch.zeros(c, dtype=t.dtype, device=t.device),
                                      t.reshape(1).expand(len(frames) - c)])[None]  # (1, W)
            pred = predict(model_input, timestep, frames)
            if c and context_mode == "renoise" and t == last:  # cross-fade the context towards the new estimate
                estimate = _predicted_clean(scheduler, noisy, pred[:, :, :c], t)
                if estimate is not None:
                    w = torch.arange(1, c + 1, device=clean.device, dtype=torch.float32) / (c + 1)  # (c,)
                    faded = clean.float() + w.view(1, 1, -1, 1, 1) * (estimate.float() - clean.float())
                    out[:, :, frames.start:frames.start + c] = faded.to(out.dtype)
            x = scheduler.step(pred[:, :, c:].to(x.dtype), t, x, generator=generator, return_dict=False)[0]
            if on_step is not None:
                x = on_step(step, t, x)
            step += 1
        out[:, :, new] = x
    return out
