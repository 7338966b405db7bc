"""StreamSession: live pose transfer with pipelined denoising, in one of two window layouts.

``schedule="staggered"`` (models trained on this layout, ``config.stream_schedule``): the window holds
``window`` latent frames, oldest first::

    [ C clean context frames | m frames at level K-1 | ... | m frames at level 0 (pure noise) ]

with K = ``num_inference_steps`` noise levels, m = ``frames_per_level`` and C = window - K*m.
Every UNet call (one call per window: per-frame timesteps are handled inside the UNet) advances
each denoising frame by one LCM level. The m frames that reach the end leave as output (the only
frames decoded), shift into the clean context, and m new pose frames enter at level 0. So one
UNet call over ``window`` frames produces m output frames, and temporal attention always sees the
whole window (clean recent frames serve as context).

``schedule="uniform"`` (the default for models trained with one noise level per clip, which is every
public checkpoint): the window is ``[ C context frames | m new frames ]`` with C = window - m. The m
new frames are denoised together through all K levels (K UNet calls) while the context frames, the
latest finished outputs, are noised to the same level at every call (fresh noise), so every frame the
model sees shares one noise level, exactly as in its training. It costs K times more UNet work per
output frame than the staggered layout; it is what keeps a model that was not trained on staggered
windows from drifting (the staggered layout decays into noise after a window on such a model:
turbonext/demo/README.md, "Streaming drift").

Before the window has filled (and while flushing) empty slots hold "ghost" frames that repeat the
first (or last) pose and are never output. Staggered: pure noise labelled with the noisiest timestep,
never updated. Uniform: denoised with the first chunk like any frame (the clip the model expects).

SDXL UNets (``addition_embed_type="text_time"``) get their added conditioning at every call: the session's
prompt pooled (``text_embeds``; under classifier-free guidance the empty prompt's for the unconditional rows)
and the time ids of the frames' size, made once per session (again after :meth:`StreamSession.reset` or a new
reference), as :meth:`TurboNextPipeline.__call__` gives them.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from turbonext.models.reference_attention import ReferenceCache
from turbonext.models.unet_motion import STREAM_SCHEDULES
from turbonext.schedulers.scheduling_staggered_lcm import StaggeredLCMSchedule
from turbonext.utils.images import image_to_tensor


COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that capture CUDA graphs


@dataclass
class StreamStats:
    """Counters and timings of a session (times in seconds, latencies from a pose frame entering
    ``step`` to its RGB frame being returned). Timings keep the most recent ``HISTORY`` values, so a
    stream that runs for hours does not grow them without bound."""

    HISTORY = 2048
    frames_in: int = 0
    frames_out: int = 0
    unet_calls: int = 0
    step_times: collections.deque = field(default_factory=lambda: collections.deque(maxlen=StreamStats.HISTORY))
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=StreamStats.HISTORY))
    latency_frames: collections.deque = field(default_factory=lambda: collections.deque(maxlen=StreamStats.HISTORY))
    first_frame_time: float | None = None

    def summary(self) -> dict:
        def pct(values, q):
            return float(np.percentile(values, q) * 1000) if values else None

        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "unet_calls": self.unet_calls,
            "mean_step_ms": float(np.mean(self.step_times) * 1000) if self.step_times else None,
            "p95_step_ms": pct(self.step_times, 95),
            "p50_latency_ms": pct(self.latencies, 50),
            "p95_latency_ms": pct(self.latencies, 95),
            "mean_latency_frames": float(np.mean(self.latency_frames)) if self.latency_frames else None,
            "first_frame_s": self.first_frame_time,
        }


class StreamSession:
    """Frame-in, frames-out pose transfer; create it with :meth:`TurboNextPipeline.stream`.

    The session renders ``reference`` (a :class:`~turbonext.models.reference_attention.ReferenceCache`)
    whatever reference the pipeline is given later, so several sessions can share one pipeline. It
    reads the pipeline's weights at every step but its reference K/V only when created: after changing
    weights (a LoRA), call :meth:`set_reference` or start a new session.
    """

    def __init__(self, pipe, reference: ReferenceCache, prompt: str = "", num_inference_steps: int = 4,
                 window: int = 16, frames_per_level: int | None = None, generator: torch.Generator | None = None,
                 compile: str | None = None, output_type: str = "pil", schedule: str | None = None,
                 guidance_scale: float = 1.0):
        max_window = pipe.unet.config.motion_max_seq_length
        if schedule is None:
            schedule = getattr(pipe.unet.config, "stream_schedule", "uniform")
        if schedule not in STREAM_SCHEDULES:
            raise ValueError(f"schedule must be one of {STREAM_SCHEDULES}, got {schedule!r}.")
        uniform = schedule == "uniform"
        if frames_per_level is None:
            frames_per_level = max(1, window // 2) if uniform else max(1, window // num_inference_steps)
        if num_inference_steps < 1 or frames_per_level < 1:
            raise ValueError("num_inference_steps and frames_per_level must be >= 1")
        if uniform and frames_per_level > window:
            raise ValueError(f"window={window} cannot hold {frames_per_level} new frames; use frames_per_level <= window.")
        if not uniform and num_inference_steps * frames_per_level > window:
            raise ValueError(
                f"window={window} cannot hold {num_inference_steps} levels x {frames_per_level} frames per level; "
                f"use window >= {num_inference_steps * frames_per_level} or fewer frames per level."
            )
        if window > max_window:
            raise ValueError(f"window={window} exceeds the motion modules' maximum of {max_window} frames.")
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {compile!r}")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        self.pipe, self.reference, self.prompt, self.output_type = pipe, reference, prompt, output_type
        self.schedule_name = schedule
        self.window, self.levels, self.per_level = window, num_inference_steps, frames_per_level
        self.context = window - frames_per_level * (1 if uniform else num_inference_steps)
        self.device, self.dtype = pipe._execution_device, pipe.unet.dtype  # under CPU offload: the accelerator
        self.generator = _device_generator(generator, self.device)  # noise is drawn where it is used
        self.schedule = StaggeredLCMSchedule(pipe.scheduler.config, num_inference_steps, device=self.device,
                                             update=getattr(pipe.config, "stream_update", "lcm"))
        # dynamic=False: every window size gets its own static-shape graph. Without it a second session with
        # another window would make dynamo retrace the frame dimension as symbolic (slower kernels, no gain).
        self.unet = pipe.unet if not compile else torch.compile(
            pipe.unet, mode=None if compile == "default" else compile, dynamic=False)
        # CUDA graph modes: each UNet call starts a new graph "step" (torch's documented pattern for inference
        # loops), so the previous tick's output buffers may be reused.
        self._mark_step = compile in CUDA_GRAPH_MODES
        if uniform:
            # LCM coefficients of every slot at each level k: K tuples of (1, 1, W, 1, 1) tensors
            self.level_coefficients = [
                self.schedule.frame_coefficients(torch.full((window,), k, device=self.device)) for k in range(self.levels)]
        else:
            # Constant per-slot tables: level of each slot (-1 = clean context) and its timestep.
            slot = torch.arange(window)
            level = torch.where(slot < self.context, -1, self.levels - 1 - (slot - self.context) // self.per_level)
            self.slot_level = level.to(self.device)  # (W,)
            ts = torch.cat([torch.zeros(1, dtype=torch.long), self.schedule.timesteps.cpu()])
            self.slot_timestep = ts[level + 1].to(self.device)  # (W,) 0 for context
            # LCM coefficients of the denoising slots (the last K*m), each (1, 1, K*m, 1, 1)
            self.coefficients = self.schedule.frame_coefficients(level[self.context:].to(self.device))
        self._no_ghosts = torch.zeros(self.per_level, dtype=torch.bool, device=self.device)
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}.")
        # a UNet with a guidance-scale embedding (LCM-distilled, e.g. RAIN) gets it at every call; others get
        # classifier-free guidance (two batch rows per call) when guidance_scale > 1
        self.timestep_cond = pipe.guidance_embedding(guidance_scale, self.device, self.dtype)
        self.guidance_scale = guidance_scale if self.timestep_cond is None and guidance_scale > 1 else 1.0
        self._set_context(reference)
        self.profiler = None  # a turbonext.streaming.profiler.TickProfiler to time each section of every tick
        self.reset()

    # ------------------------------------------------------------------ public API
    def reset(self) -> None:
        """Forget all frames (the reference stays)."""
        self.latents = None  # (1, 4, W, h, w), allocated on the first frame
        self.pose_features = None  # (W, 320, h, w)
        self.ghost = torch.ones(self.window, dtype=torch.bool, device=self.device)  # (W,)
        self.finished = torch.zeros(self.window, dtype=torch.bool, device=self.device)  # (W,) uniform: clean slots
        self.slot_ids: list[int | None] = [None] * self.window  # frame id per slot (host side)
        self.enter_times: dict[int, float] = {}
        self._pending: list[tuple[torch.Tensor, int]] = []
        self._size: tuple[int, int] | None = None
        self._added = None  # SDXL's added_cond_kwargs, made on the first UNet call (they need the frames' size)
        self._started = None
        self.stats = StreamStats()

    def set_reference(self, image, prompt: str | None = None, reference_pose=None) -> None:
        """Change the person: runs ReferenceNet once and restarts the stream. ``reference_pose``: the
        image's pose map, for models that read it (``pipe.reads_reference_pose``)."""
        self.prompt = self.prompt if prompt is None else prompt
        self.reference = self.pipe.set_reference(
            image, prompt=self.prompt, height=self._size[0] if self._size else None,
            width=self._size[1] if self._size else None, reference_pose=reference_pose)
        self._set_context(self.reference)
        self.reset()

    def _set_context(self, reference: ReferenceCache) -> None:
        """The UNet's context for every frame of the window, (W, L, D); under guidance ``cfg_text``, (2W, L, D):
        [unconditional; conditional] rows, the unconditional ones zeros (image-conditioned models) or the empty
        prompt. Made once per reference, not per call."""
        self.text = self._context(reference).to(self.dtype).expand(self.window, -1, -1).contiguous()
        self._added = None  # the prompt may have changed: made again on the next UNet call
        self.cfg_text = None
        if self.guidance_scale > 1:
            negative = (torch.zeros_like(self.text) if self.pipe.image_conditioned else
                        self.pipe.encode_prompt("", self.device).to(self.dtype).expand(self.window, -1, -1))
            self.cfg_text = torch.cat([negative, self.text])

    def _context(self, reference: ReferenceCache) -> torch.Tensor:
        """The UNet's cross-attention context (1, L, D): the reference's image embedding for image-conditioned
        models, else the prompt's text embedding."""
        if self.pipe.image_conditioned:
            return reference.context.to(self.device)
        return self.pipe.encode_prompt(self.prompt, self.device)

    def _added_cond_kwargs(self) -> dict:
        """SDXL: ``{"added_cond_kwargs": {"text_embeds": (R, P), "time_ids": (R, 6)}}`` for every UNet call, R = 2
        under guidance ([unconditional (the empty prompt); conditional] rows, as the context), the time ids of the
        frames' size; made once, on the first call. Other UNets: ``{}`` (they take no added conditioning)."""
        if not self.pipe.text_time_conditioned:
            return {}
        if self._added is None:
            height, width = self._size
            pooled = self.pipe.encode_pooled_prompt(self.prompt, self.device)
            if self.guidance_scale > 1:
                pooled = torch.cat([self.pipe.encode_pooled_prompt("", self.device), pooled])
            self._added = self.pipe.added_cond_kwargs(pooled.to(self.device, self.dtype), height, width)
        return {"added_cond_kwargs": self._added}

    @torch.no_grad()
    def step(self, pose_frame) -> list:
        """Add one pose frame; returns the RGB frames that became ready (possibly none)."""
        now = time.perf_counter()
        if self._started is None:
            self._started = now
        pose = self._pose_tensor(pose_frame)  # (3, H, W), uint8 or float in [0, 1], on the host
        size = tuple(pose.shape[1:])
        if size[0] % 8 or size[1] % 8:
            raise ValueError(f"pose_frame size {size} (H, W) must be divisible by 8.")
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise ValueError(f"pose_frame size {size} differs from this stream's {self._size}; call reset() first.")
        frame_id = self.stats.frames_in
        self.stats.frames_in += 1
        self.enter_times[frame_id] = now
        self._pending.append((pose, frame_id))
        if len(self._pending) < self.per_level:
            return []
        return self._run(self._take_pending())

    @torch.no_grad()
    def flush(self) -> list:
        """Finish every frame still in flight (pads with ghost frames); returns them."""
        out = []
        if self._pending:
            out += self._run(self._take_pending())
        while self.enter_times:  # frames in flight: entered, not yet returned
            out += self._run(None)
        return out

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _pose_tensor(frame) -> torch.Tensor:
        """Webcam-style uint8 (H, W, 3) arrays stay uint8 (4x less to copy to the GPU); else floats in [0, 1]."""
        if isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3:
            return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
        return image_to_tensor(frame, "pose_frame")

    def _to_device(self, poses: torch.Tensor) -> torch.Tensor:
        """(g, 3, H, W) host tensor -> guider input on the device, floats in [0, 1]."""
        if self.device.type == "cuda":
            poses = poses.pin_memory().to(self.device, non_blocking=True)
        else:
            poses = poses.to(self.device)
        if poses.dtype == torch.uint8:
            poses = poses.float() / 255.0
        return poses.to(self.pipe.pose_guider.dtype)

    def _take_pending(self):
        group, self._pending = self._pending, []
        return group

    def _allocate(self, first_features: torch.Tensor) -> None:
        h, w = first_features.shape[-2:]
        channels = self.pipe.unet.config.in_channels
        self.latents = self._randn((1, channels, self.window, h, w))  # ghosts: pure noise
        self.pose_features = first_features[:1].expand(self.window, -1, -1, -1).clone()

    def _randn(self, shape) -> torch.Tensor:
        """Standard normal noise drawn on the session's device (no host round trip), in the UNet's dtype."""
        return torch.randn(shape, generator=self.generator, device=self.device, dtype=torch.float32).to(self.dtype)

    def _shift_in(self, features: torch.Tensor, ids: list[int | None]) -> None:
        """Drop the oldest m slots, append m new frames at level 0 with fresh noise."""
        m = self.per_level
        fresh = self._randn((1, self.latents.shape[1], m) + tuple(self.latents.shape[-2:]))
        self.latents = torch.cat([self.latents[:, :, m:], fresh], dim=2)
        self.pose_features = torch.cat([self.pose_features[m:], features], dim=0)
        if all(i is not None for i in ids):  # the common case: no host-to-device copy
            new_ghost = self._no_ghosts
        else:
            new_ghost = torch.tensor([i is None for i in ids], device=self.device)
        self.ghost = torch.cat([self.ghost[m:], new_ghost])
        self.finished = torch.cat([self.finished[m:], torch.zeros_like(new_ghost)])
        self.slot_ids = self.slot_ids[m:] + list(ids)

    def _run(self, group) -> list:
        """One pipeline tick: shift a group of m frames in, denoise (staggered: one UNet call, every frame one
        LCM level on; uniform: the new frames through all K levels), emit the frames that finished."""
        tick = time.perf_counter()
        profiler = self.profiler
        if profiler is not None:
            profiler.start_tick()
        m = self.per_level
        if group is None:  # flushing: ghosts that repeat the last pose
            features, ids = self.pose_features[-1:].expand(m, -1, -1, -1), [None] * m
        else:
            poses = [p for p, _ in group]
            if any(p.dtype != torch.uint8 for p in poses):  # mixed inputs: all as floats in [0, 1]
                poses = [p.float() / 255.0 if p.dtype == torch.uint8 else p for p in poses]
            poses = self._to_device(torch.stack(poses))  # (g, 3, H, W)
            features = self.pipe.pose_guider(poses).to(self.dtype)  # each pose through the guider once
            ids = [i for _, i in group]
            if len(group) < m:  # partial group at flush: pad with ghosts
                features = torch.cat([features, features[-1:].expand(m - len(group), -1, -1, -1)])
                ids += [None] * (m - len(group))
            if self.latents is None:
                self._allocate(features)
        self._shift_in(features, ids)
        if profiler is not None:
            profiler.mark("pose_guider")  # host-to-device pose copy, guider, window shift

        if self.schedule_name == "uniform":
            self._denoise_uniform(profiler)
        else:
            self._denoise_staggered(profiler)

        # frames that reached the last level leave (they stay in the window as clean context); within a group
        # real frames come first and ghost padding last, so the finished frames are the slots [C, C+n)
        c = self.context
        done = [fid for fid in self.slot_ids[c:c + m] if fid is not None]
        assert self.slot_ids[c:c + len(done)] == done, "ghost padding sits at the end of a group"
        frames = self._decode(len(done)) if done else []
        if profiler is not None:
            profiler.mark("decode")  # TAESD decode + conversion + device-to-host copy
            profiler.end_tick()
        end = time.perf_counter()
        self.stats.step_times.append(end - tick)
        for fid in done:
            self.stats.latencies.append(end - self.enter_times.pop(fid))
            self.stats.latency_frames.append(self.stats.frames_in - 1 - fid)
        if done and self.stats.first_frame_time is None:
            self.stats.first_frame_time = end - self._started
        self.stats.frames_out += len(done)
        return frames

    def _unet(self, latents: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """One UNet call over the window; ``timesteps`` (1, W). Returns the noise prediction (1, C, W, h, w)."""
        if self._mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        reference = self.reference if self.pipe.reference_state.enabled else None
        added = self._added_cond_kwargs()
        if self.guidance_scale <= 1:
            return self.unet(latents, timesteps, encoder_hidden_states=self.text, pose_features=self.pose_features,
                             timestep_cond=self.timestep_cond, cross_attention_kwargs={"reference": reference},
                             return_dict=False, **added)[0]
        # classifier-free guidance: [unconditional; conditional] rows in one call
        kwargs = {"reference": reference}
        if reference is not None and not self.pipe.config.reference_in_uncond:
            kwargs["reference_skip_rows"] = self.window  # the AnimateAnyone family: no reference without condition
        pred = self.unet(latents.repeat(2, 1, 1, 1, 1), timesteps.expand(2, -1),
                         encoder_hidden_states=self.cfg_text,
                         pose_features=self.pose_features.repeat(2, 1, 1, 1), cross_attention_kwargs=kwargs,
                         return_dict=False, **added)[0]
        uncond, cond = pred.chunk(2)
        return uncond + self.guidance_scale * (cond - uncond)

    def _denoise_staggered(self, profiler) -> None:
        """One UNet call over the whole window with per-frame timesteps; every denoising frame one level on."""
        m = self.per_level
        timesteps = torch.where(self.ghost, self.schedule.timesteps[0], self.slot_timestep)[None]  # (1, W)
        eps = self._unet(self.latents, timesteps)
        if profiler is not None:
            profiler.mark("unet")
        # one LCM level for the denoising slots [C, W); only levels 0..K-2 are renoised (the last one, at
        # slots [C, C+m), becomes the clean output), so noise is drawn for those only
        c = self.context
        sample = self.latents[:, :, c:].float()  # (1, 4, K*m, h, w)
        noise = torch.zeros_like(sample)
        noise[:, :, m:] = self._randn((1, sample.shape[1], sample.shape[2] - m, *sample.shape[-2:])).float()
        next_latents, _ = self.schedule.step(eps[:, :, c:].float(), sample, None, noise, coefficients=self.coefficients)
        advance = (~self.ghost[c:]).view(1, 1, -1, 1, 1)  # ghost slots are never advanced
        self.latents[:, :, c:] = torch.where(advance, next_latents.to(self.dtype), self.latents[:, :, c:])
        self.stats.unet_calls += 1
        if profiler is not None:
            profiler.mark("scheduler")
    def _denoise_uniform(self, profiler) -> None:
        """K UNet calls: the frames not finished yet (the m new ones; the whole window at the start) go through
        every level together while the finished context frames are noised to that same level each call."""
        active = ~self.finished  # (W,)
        advance = active.view(1, 1, -1, 1, 1)
        for k in range(self.levels):
            a_t, a_next, c_skip, c_out = self.level_coefficients[k]
            sample = self.latents.float()  # (1, 4, W, h, w): context slots hold clean latents
            noise = self._randn(sample.shape).float()
            noised = a_t.sqrt() * sample + (1 - a_t).sqrt() * noise  # the context at level k
            model_input = torch.where(advance, sample, noised).to(self.dtype)
            eps = self._unet(model_input, self.schedule.timesteps[k].expand(1, self.window))
            if profiler is not None:
                profiler.mark("unet")
            renoise = self._randn(sample.shape).float() if k < self.levels - 1 else torch.zeros_like(sample)
            next_latents, _ = self.schedule.step(eps.float(), sample, None, renoise,
                                                 coefficients=self.level_coefficients[k])
            self.latents = torch.where(advance, next_latents.to(self.dtype), self.latents)
            self.stats.unet_calls += 1
            if profiler is not None:
                profiler.mark("scheduler")
        self.finished = torch.ones_like(self.finished)

    def _decode(self, count: int) -> list:
        """Decode the ``count`` finished frames at slots [C, C+count): a slice, no gather."""
        latents = self.latents[:, :, self.context:self.context + count]  # (1, 4, n, h, w), clean
        video = self.pipe.decode_latents(latents)  # (1, 3, n, H, W) in [-1, 1]
        frames = (video[0].permute(1, 0, 2, 3) / 2 + 0.5).clamp(0, 1)  # (n, 3, H, W) in [0, 1]
        if self.output_type == "pt":
            return list(frames)
        frames = (frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # convert on the device
        if self.output_type == "pil":
            return [Image.fromarray(f) for f in frames]
        return list(frames)


def _device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator on ``device`` for the stream's noise: ``generator`` itself when it lives there, else one
    seeded from it (deterministic for a seeded ``generator``), so no noise is drawn on the host and copied."""
    if generator is None or torch.device(generator.device).type == torch.device(device).type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device).manual_seed(seed)
