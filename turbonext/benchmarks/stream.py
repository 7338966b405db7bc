"""Speed benchmarks: ``python -m turbonext bench stream`` (or ``turbonext bench stream``).

Builds SD1.5-shaped components from configs with random weights (no download; speed does not
depend on weight values) and measures, in ONE run and on the same device:

  (a) diffusers' AnimateDiffPipeline as it runs by default (eager): 16 frames x N steps + SD-VAE
      decode, reported per frame;
  (b) the literal FIFO loop: for every new frame, N steps over the whole 16-frame window + TAESD
      decode of that frame;
  (c) StreamSession (pipelined denoising) for each requested window / frames-per-level / compile
      setting: sustained FPS after warm-up, p50/p95 latency (pose frame in -> RGB frame out),
      first-frame time, peak GPU memory.

``turbonext bench stream`` prints a markdown table (with the exact command and device name); ``--json`` and
``--markdown PATH`` also write it. ``--arch sd21`` / ``--arch sdxl`` time the other Stable Diffusion backbones
(random weights, full size; SD2.1 at 512 px unless ``--size``, SDXL at its native 1024 px unless ``--size``),
with diffusers' AnimateDiffSDXLPipeline as SDXL's baseline (a).
``--tiny --device cpu`` runs the same code with tiny components (CI, laptops). ``--model M`` times a
trained pipeline instead (a folder, a Hub id, or ``turbonext-demo``) at its native size, e.g. the embedded
demo on a laptop CPU; ``--channels-last`` stores the VAE in channels_last memory format first (what
:func:`turbonext.load_for_inference` does on a CPU), to measure that choice on your device.
"""

from __future__ import annotations

import platform
import shlex
import time

import numpy as np
import torch
from torch._dynamo.utils import counters

from turbonext.converters.build import build_random_pipeline as build_converted_random_pipeline
from turbonext.jobs.reference import native_size
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.pipelines.presets import build_random_pipeline
from turbonext.streaming.profiler import TickProfiler
from turbonext.streaming.session import CUDA_GRAPH_MODES


BACKBONE_ARCHS = ("sd21", "sdxl")  # --arch values that are a Stable Diffusion backbone (not a converted family)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _pose_frames(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Moving skeleton-like strokes (random weights: content does not change the speed)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        img = np.zeros((size, size, 3), np.uint8)
        x = int(size * (0.3 + 0.4 * (0.5 + 0.5 * np.sin(i / 5))))
        img[size // 4 : 3 * size // 4, x : x + max(2, size // 64)] = rng.integers(100, 255, 3)
        frames.append(img)
    return frames


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def median_seconds(run, repeats: int, device: torch.device) -> float:
    """``run()`` once to warm up, then the median wall time of ``repeats`` runs (the device synchronised)."""
    run()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_animatediff(pipe, size: int, steps: int, frames: int = 16, repeats: int = 1) -> dict:
    """(a) diffusers' AnimateDiffPipeline with an SD VAE, eager, default settings, guidance off (LCM)."""
    from diffusers import AnimateDiffPipeline, AnimateDiffSDXLPipeline, UNetMotionModel

    unet = UNetMotionModel.from_config(pipe.unet.config).to(pipe.device, pipe.unet.dtype)
    vae = pipe.encoder_vae if pipe.encoder_vae is not None else pipe.vae
    if pipe.text_time_conditioned:  # SDXL: diffusers' own SDXL AnimateDiff (two text encoders, time ids)
        base = AnimateDiffSDXLPipeline(vae=vae, text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2,
                                       tokenizer=pipe.tokenizer, tokenizer_2=pipe.tokenizer_2, unet=unet,
                                       motion_adapter=None, scheduler=pipe.scheduler)
    else:
        base = AnimateDiffPipeline(vae=vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=unet,
                                   motion_adapter=None, scheduler=pipe.scheduler)
    base.set_progress_bar_config(disable=True)

    def run():
        return base(prompt="", num_frames=frames, height=size, width=size, num_inference_steps=steps,
                    guidance_scale=1.0, output_type="np")

    clip = median_seconds(run, repeats, pipe.device)
    return {"name": "(a) diffusers AnimateDiff clip", "ms_per_frame": clip / frames * 1000, "fps": frames / clip,
            "latency_ms": clip * 1000, "clip_ms": clip * 1000}


@torch.no_grad()
def literal_fifo_frame(pipe, latents: torch.Tensor, text: torch.Tensor, features: torch.Tensor, steps: int,
                       generator: torch.Generator | None = None, added_cond_kwargs: dict | None = None) -> torch.Tensor:
    """One frame of the literal FIFO loop: ``steps`` UNet calls over the whole window from ``latents``
    (1, 4, W, h, w), then the window's last frame decoded (``pipe.decode_latents``), on the CPU.

    The scheduler is reset first: ``LCMScheduler.step`` keeps a step index, so without ``set_timesteps``
    every frame after the first would continue the previous frame's schedule (same cost, wrong output).
    ``generator``: for the noise LCM adds between steps (pass a freshly seeded one for repeatable frames).
    ``added_cond_kwargs``: SDXL's added conditioning (:func:`sdxl_added_cond`).
    """
    pipe.scheduler.set_timesteps(steps, device=latents.device)
    x = latents
    cond = pipe.guidance_embedding(1.0, latents.device, latents.dtype)  # LCM-distilled UNets with a guidance input
    for t in pipe.scheduler.timesteps:
        eps = pipe.unet(x, t, encoder_hidden_states=text, pose_features=features, timestep_cond=cond,
                        added_cond_kwargs=added_cond_kwargs, return_dict=False)[0]
        x = pipe.scheduler.step(eps, t, x, generator=generator, return_dict=False)[0]
    return pipe.decode_latents(x[:, :, -1:]).cpu()


def sdxl_added_cond(pipe, latents: torch.Tensor) -> dict | None:
    """SDXL's added conditioning for UNet calls on ``latents`` (1, C, F, h, w): the empty prompt pooled, the time
    ids of the frame size; None for other backbones."""
    if not pipe.text_time_conditioned:
        return None
    pooled = pipe.encode_pooled_prompt("", latents.device).to(latents.dtype)
    scale = pipe.vae_scale_factor
    return pipe.added_cond_kwargs(pooled, latents.shape[-2] * scale, latents.shape[-1] * scale)


def _context(pipe, device) -> torch.Tensor:
    """The cross-attention context: the current reference's image embedding, or the empty prompt's."""
    return pipe.current_reference().context.to(device) if pipe.image_conditioned else pipe.encode_prompt("", device)


@torch.no_grad()
def bench_literal_fifo(pipe, size: int, steps: int, window: int = 16, new_frames: int = 3) -> dict:
    """(b) per new frame: ``steps`` full UNet calls over the whole window + TAESD decode of one frame."""
    device, dtype = pipe.device, pipe.unet.dtype
    h = size // 8
    poses = torch.from_numpy(np.stack(_pose_frames(window, size))).permute(0, 3, 1, 2).float().div(255).to(device, dtype)
    features = pipe.pose_guider(poses)
    text = _context(pipe, device).to(dtype).expand(window, -1, -1)
    latents = torch.randn(1, 4, window, h, h, device=device, dtype=dtype)
    added = sdxl_added_cond(pipe, latents)  # once, as the stream does: not part of a frame's cost
    extra = {} if added is None else {"added_cond_kwargs": added}

    def one_frame():
        return literal_fifo_frame(pipe, latents, text, features, steps,
                                  generator=torch.Generator(device).manual_seed(0), **extra)

    one_frame()  # warm-up
    _sync(device)
    t = time.perf_counter()
    for _ in range(new_frames):
        one_frame()
    _sync(device)
    per = (time.perf_counter() - t) / new_frames
    return {"name": "(b) literal FIFO loop", "ms_per_frame": per * 1000, "fps": 1 / per, "latency_ms": per * 1000}


@torch.no_grad()
def bench_stream(pipe, size: int, steps: int, window: int, per_level: int | None, compile: str | None,
                 frames: int, warmup: int, profile_frames: int = 0, schedule: str | None = "staggered") -> dict:
    """(c) StreamSession: sustained FPS over ``frames`` frames after ``warmup`` frames; then, with
    ``profile_frames``, that many more frames under a :class:`TickProfiler` (kept out of the FPS). ``schedule``:
    the window layout ("staggered": one UNet call per ``per_level`` frames, for models trained on it; "uniform":
    ``steps`` calls per ``per_level`` frames, what models without that training need; None: the model's own)."""
    device = pipe.device
    session = pipe.stream(num_inference_steps=steps, window=window, frames_per_level=per_level, compile=compile,
                          output_type="np", generator=torch.Generator(device).manual_seed(0), schedule=schedule)
    poses = _pose_frames(warmup + frames, size)
    graph_skips = counters["inductor"]["cudagraph_skips"]  # inductor counts graphs it could not capture
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for p in poses[:warmup]:
        session.step(p)
    first_frame = session.stats.first_frame_time
    _sync(device)
    warm_s = time.perf_counter() - t0
    out_before = session.stats.frames_out
    session.stats.latencies.clear()  # latencies of the measured frames only
    t = time.perf_counter()
    for p in poses[warmup:]:
        session.step(p)
    _sync(device)
    elapsed = time.perf_counter() - t
    produced = session.stats.frames_out - out_before
    latencies = np.array(session.stats.latencies) * 1000
    profile = None
    if profile_frames:
        session.profiler = TickProfiler(device)
        for p in _pose_frames(profile_frames, size, seed=2):
            session.step(p)
        profile = session.profiler.summary()
        session.profiler = None
    return {
        "name": f"(c) StreamSession {session.schedule_name} steps={steps} window={window} "
                f"frames_per_level={session.per_level} compile={compile}",
        "schedule": session.schedule_name, "steps": steps, "window": window, "frames_per_level": session.per_level,
        "compile": compile,
        "ms_per_frame": elapsed / max(produced, 1) * 1000, "fps": produced / elapsed,
        "latency_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "p95_latency_ms": float(np.percentile(latencies, 95)) if len(latencies) else None,
        "first_frame_s": first_frame, "warmup_s": warm_s, "frames_measured": produced,
        "latency_frames": float(np.mean(session.stats.latency_frames)) if session.stats.latency_frames else None,
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "profile": profile,
        "cudagraph_skips": counters["inductor"]["cudagraph_skips"] - graph_skips,
    }


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def markdown_table(result: dict) -> str:
    lines = [
        f"### {result['title']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Device: {result['device']}; dtype {result['dtype']}; {result['size']}x{result['size']}; "
        f"{'/'.join(str(k) for k in result['steps'])} steps (baselines: {result['steps'][0]}); "
        f"torch {result['torch']}; {result['date']}",
        "",
        "| setting | ms/frame | FPS | p50 latency ms | p95 latency ms | first frame s | peak GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['name']} | {_fmt(r['ms_per_frame'])} | {_fmt(r['fps'])} | {_fmt(r.get('latency_ms'))} | "
                     f"{_fmt(r.get('p95_latency_ms'))} | {_fmt(r.get('first_frame_s'), '.2f')} | "
                     f"{_fmt(r.get('peak_memory_gb'), '.2f')} |")
    profiled = [r for r in result["rows"] if r.get("profile")]
    if profiled:
        lines += ["", "Where a tick goes (mean ms per tick: staggered, one UNet call; uniform, num_inference_steps calls; a tick emits frames_per_level frames; GPU-timeline "
                  "spans on CUDA, see turbonext/streaming/profiler.py):", "",
                  "| setting | pose guider + shift | UNet | scheduler | decode + copy | host | tick |",
                  "|---|---|---|---|---|---|---|"]
        for r in profiled:
            p = r["profile"]
            lines.append(f"| {r['name']} | {p['pose_guider_ms']:.2f} | {p['unet_ms']:.2f} | {p['scheduler_ms']:.2f} | "
                         f"{p['decode_ms']:.2f} | {p['host_ms']:.2f} | {p['tick_ms']:.2f} |")
    skipped = [r["name"] for r in result["rows"] if r.get("cudagraph_skips") and r.get("compile") in CUDA_GRAPH_MODES]
    if skipped:
        lines += ["", "**CUDA graphs were NOT captured** (inductor skipped them; the reason is in the log) for: " +
                  "; ".join(skipped)]
    if result.get("ratios"):
        lines += ["", f"Ratios (best {result['steps'][0]}-step StreamSession FPS vs baselines): " +
                  ", ".join(f"{k} {v:.1f}x" for k, v in result["ratios"].items())]
    return "\n".join(lines) + "\n"


def load_bench_pipeline(args):
    """The pipeline a benchmark times: ``--model``, or random weights (``--tiny`` or full size; SD1.5, a converted
    family's architecture, or the SD2.1 / SDXL backbone)."""
    device = torch.device(args.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    if args.model:
        pipe = TurboNextPipeline.from_pretrained(args.model, torch_dtype=dtype).to(device)
    elif getattr(args, "arch", "ours") in BACKBONE_ARCHS:  # another Stable Diffusion backbone, random weights
        pipe = build_random_pipeline("tiny" if args.tiny else "full", torch_dtype=dtype, device=device,
                                     backbone=args.arch)
    elif getattr(args, "arch", "ours") != "ours":  # a converted family's architecture, random weights
        pipe = build_converted_random_pipeline(args.arch, tiny=args.tiny, torch_dtype=dtype, device=device)
    else:
        pipe = build_random_pipeline("tiny" if args.tiny else "full", torch_dtype=dtype, device=device)
    if args.channels_last:
        pipe.vae.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_stream_benchmark(args) -> dict:
    device = torch.device(args.device)
    pipe = load_bench_pipeline(args)
    size = args.size or native_size(pipe)
    steps = args.steps[0]  # baselines at the first value
    ref = _pose_frames(1, size, seed=1)[0]
    pipe.set_reference(ref)
    rows = []
    if "a" in args.baselines and pipe.image_conditioned:
        print("(a) skipped: diffusers' AnimateDiffPipeline is text-conditioned; this architecture is not", flush=True)
    elif "a" in args.baselines:
        rows.append(bench_animatediff(pipe, size, steps))
        print(rows[-1], flush=True)
    if "b" in args.baselines:
        rows.append(bench_literal_fifo(pipe, size, steps, new_frames=args.fifo_frames))
        print(rows[-1], flush=True)
    for compile_mode in args.compile:
        for window in args.window:
            for stream_steps in args.steps:
                for schedule in args.schedule or ["staggered"]:
                    for per_level in args.frames_per_level:
                        if per_level * (stream_steps if schedule == "staggered" else 1) > window:
                            continue
                        rows.append(bench_stream(pipe, size, stream_steps, window, per_level,
                                                 None if compile_mode == "none" else compile_mode, args.frames,
                                                 args.warmup, args.profile, schedule=schedule))
                        print(rows[-1], flush=True)
    streams = [r for r in rows if r["name"].startswith("(c)") and r["steps"] == steps]  # same steps as (a), (b)
    best = max(streams, key=lambda r: r["fps"]) if streams else None
    ratios = {}
    for r in rows:
        if best and not r["name"].startswith("(c)"):
            ratios[f"vs {r['name'][:3]}"] = best["fps"] / r["fps"]
    return {
        "title": f"stream benchmark ({model_label(args)}, {device_name(device)})",
        "command": "python -m turbonext bench " + " ".join(shlex.quote(a) for a in args.argv),
        "device": device_name(device), "dtype": args.dtype, "size": size, "steps": list(args.steps),
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "rows": rows, "ratios": ratios,
    }


def model_label(args) -> str:
    backbone = getattr(args, "arch", "ours") in BACKBONE_ARCHS
    label = f"model {args.model}" if args.model else "tiny" if args.tiny else "full size" if backbone else "SD1.5 size"
    if not args.model and getattr(args, "arch", "ours") != "ours":
        label += f", {args.arch} architecture"
    return label + (", VAE channels_last" if args.channels_last else "")
