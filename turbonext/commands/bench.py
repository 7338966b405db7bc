"""``turbonext bench stream|live``: speed benchmarks (see :mod:`turbonext.benchmarks.stream` and
:mod:`turbonext.benchmarks.live`). Prints the results as a markdown table; writes files only when asked
(``--json PATH``, ``--markdown PATH`` appends the table, e.g. to BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import torch

from turbonext.benchmarks.image import image_markdown, run_image_benchmark
from turbonext.benchmarks.live import markdown_rows, run_live_benchmark
from turbonext.benchmarks.stream import (
    BACKBONE_ARCHS,
    device_name,
    load_bench_pipeline,
    markdown_table,
    model_label,
    run_stream_benchmark,
)
from turbonext.converters.sources import SOURCES
from turbonext.jobs.reference import native_size
from turbonext.pose.detectors import get_detector
from turbonext.utils.devices import default_device


def _header(args, title: str, size: int) -> list[str]:
    return [f"### {title} ({model_label(args)}, {device_name(torch.device(args.device))})", "",
            f"Command: `python -m turbonext bench {' '.join(shlex.quote(a) for a in args.argv)}`  ",
            f"Device: {device_name(torch.device(args.device))}; dtype {args.dtype}; {size}x{size}; "
            f"torch {torch.__version__}; {time.strftime('%Y-%m-%d')}", ""]


def live_benchmark_table(args) -> tuple[dict, str]:
    """``bench live``: the app's webcam path (:mod:`turbonext.benchmarks.live`) for each window / frames per
    level / compile setting; returns (result, markdown)."""
    pipe = load_bench_pipeline(args)
    rows = []
    for compile_mode in args.compile:
        for window in args.window:
            for schedule in args.schedule or [None]:  # None: the model's own layout, as the app streams it
                layout = schedule or getattr(pipe.unet.config, "stream_schedule", "uniform")
                for per_level in args.frames_per_level:
                    if per_level * (args.steps[0] if layout == "staggered" else 1) > window:
                        continue
                    detector = get_detector(args.detector, video_mode=True)
                    try:
                        rows.append(run_live_benchmark(
                            pipe, detector, seconds=args.seconds, input_fps=args.input_fps, warmup_s=args.warmup_seconds,
                            window=window, frames_per_level=per_level, num_inference_steps=args.steps[0],
                            compile=None if compile_mode == "none" else compile_mode, schedule=schedule))
                    finally:
                        detector.close()
                    print(rows[-1], flush=True)
    size = native_size(pipe)
    result = {"device": device_name(torch.device(args.device)), "dtype": args.dtype, "size": size,
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    note = ("Latency: a webcam frame arriving -> its rendered frame ready (pose detection, waiting for the model, "
            "the model; not the camera or the display); model part: the pose entering the model -> out. Rendered "
            "FPS counts every frame the model emits.")
    return result, "\n".join(_header(args, "live benchmark (webcam path)", size) + markdown_rows(rows) + ["", note]) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turbonext bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["stream", "live", "image"],
                        help="stream: StreamSession vs baselines, frames fed as fast as it takes them; image: one pose "
                             "-> one picture, per image, next to RPFM's published time; live: the "
                             "app's webcam path (pose detection + latest-frame-wins worker) at a webcam's frame rate")
    parser.add_argument("--tiny", action="store_true", help="tiny components (CI / CPU) instead of SD1.5 size")
    parser.add_argument("--arch", default="ours", choices=("ours", *sorted(SOURCES), *BACKBONE_ARCHS),
                        help="random-weight architecture: turbonext's (SD1.5), a converted family's (image-prompt "
                             "conditioning, v2 motion modules, its pose guider), or turbonext's on another backbone: "
                             "sd21 (Stable Diffusion 2.1; timed at 512 px unless --size) or sdxl (SDXL with its "
                             "motion adapter; timed at its native 1024 px unless --size); full size unless --tiny")
    parser.add_argument("--model", default=None,
                        help="time this trained pipeline (folder, Hub id or turbonext-demo) instead of random weights")
    parser.add_argument("--channels-last", action="store_true",
                        help="store the VAE in channels_last memory format (faster decoding on CPUs)")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--dtype", default=None, choices=["fp16", "bf16", "fp32"], help="default fp16 on GPU, fp32 on CPU")
    parser.add_argument("--size", type=int, default=None,
                        help="frame size (default 512, 64 with --tiny, the model's native size with --model and "
                             "with --arch sdxl: 1024)")
    parser.add_argument("--steps", type=int, nargs="+", default=[4],
                        help="LCM steps (noise levels of a stream); the baselines use the first value")
    parser.add_argument("--window", type=int, nargs="+", default=[16])
    parser.add_argument("--frames-per-level", type=int, nargs="+", default=[4, 2, 1])
    parser.add_argument("--schedule", nargs="+", default=None, choices=("staggered", "uniform"),
                        help="stream window layouts to measure: staggered (one UNet call per frames_per_level frames; "
                             "models trained on it) and/or uniform (num_inference_steps calls per frames_per_level "
                             "frames; any model). Default: stream, staggered; live, the model's own (as the app)")
    parser.add_argument("--compile", nargs="+", default=["none"],
                        choices=["none", "default", "reduce-overhead", "max-autotune"])
    parser.add_argument("--frames", type=int, default=None, help="frames measured after warm-up (default 300, 24 tiny)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up frames (default 48, 16 tiny)")
    parser.add_argument("--baselines", nargs="*", default=["a", "b"], choices=["a", "b"])
    parser.add_argument("--fifo-frames", type=int, default=3, help="frames timed for the slow baseline (b)")
    parser.add_argument("--profile", type=int, default=0, metavar="FRAMES",
                        help="after each StreamSession measurement, time FRAMES more frames section by section "
                             "(pose guider, UNet, scheduler, decode, host)")
    parser.add_argument("--seconds", type=float, default=30.0, help="live: seconds measured after the warm-up")
    parser.add_argument("--warmup-seconds", type=float, default=5.0, help="live: seconds after the first frame, not measured")
    parser.add_argument("--input-fps", type=float, default=12.5, help="live: the replayed webcam's frame rate")
    parser.add_argument("--detector", default="auto", help="live: pose detector (auto, yolo, mediapipe)")
    parser.add_argument("--repeats", type=int, default=5, help="image: timed images per setting (median)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--markdown", default=None, metavar="PATH",
                        help="also append the table to this markdown file (e.g. BENCHMARKS.md); default: print only")
    return parser


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv)
    if args.dtype is None:
        args.dtype = "fp32" if torch.device(args.device).type == "cpu" else "fp16"
    if args.model and args.tiny:
        raise SystemExit("--tiny and --model exclude each other: --tiny builds random tiny components")
    if args.model and args.arch != "ours":
        raise SystemExit("--arch and --model exclude each other: --arch builds a random-weight architecture")
    if args.arch != "ours" and args.what == "live":
        raise SystemExit("--arch applies to `bench stream`; the live benchmark runs a real model (--model)")
    native = args.model or (args.arch == "sdxl" and not args.tiny)  # SDXL at 512 px is not what it renders
    args.size = args.size or (None if native else 64 if args.tiny else 512)
    args.frames = args.frames or (24 if args.tiny else 300)
    args.warmup = args.warmup or (16 if args.tiny else 48)
    if args.size and args.size % 8:
        raise SystemExit(f"--size must be divisible by 8, got {args.size}")
    if args.what == "live":
        result, table = live_benchmark_table(args)
    elif args.what == "image":
        result = run_image_benchmark(args)
        table = image_markdown(result)
    else:
        result = run_stream_benchmark(args)
        table = markdown_table(result)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + table)
    return 0
