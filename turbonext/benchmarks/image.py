"""``turbonext bench image``: single-image pose transfer (one pose -> one picture), timed per image, next to
RPFM's published 0.489 s per 512x512 image (A100, 65 network evaluations; its paper's figure, not ours)."""

from __future__ import annotations

import shlex
import time

import torch

from turbonext.benchmarks.stream import _pose_frames, device_name, load_bench_pipeline, median_seconds, model_label
from turbonext.jobs.reference import native_size


RPFM_SECONDS = 0.489  # RPFM (arXiv 2024), 512x512 on an A100 at NFE 65, as published


@torch.no_grad()
def bench_image(pipe, size: int, steps: int, repeats: int, skip_motion_modules: bool) -> dict:
    pose = _pose_frames(1, size, seed=3)[0]
    run = lambda: pipe.transfer_image(pose, num_inference_steps=steps, output_type="np",  # noqa: E731
                                      skip_motion_modules=skip_motion_modules)
    median = median_seconds(run, repeats, pipe.device)
    name = f"transfer_image steps={steps} motion modules {'skipped' if skip_motion_modules else 'run'}"
    comparable = size == 512  # RPFM's figure is for 512x512 images
    return {"name": name, "seconds": median, "images_per_s": 1 / median,
            "vs_rpfm": RPFM_SECONDS / median if comparable else None}


def run_image_benchmark(args) -> dict:
    pipe = load_bench_pipeline(args)
    size = args.size or native_size(pipe)
    pipe.set_reference(_pose_frames(1, size, seed=1)[0])
    rows = [bench_image(pipe, size, steps, args.repeats, skip) for steps in args.steps for skip in (True, False)]
    return {"title": f"single-image benchmark ({model_label(args)}, {device_name(torch.device(args.device))})",
            "command": "python -m turbonext bench " + " ".join(shlex.quote(a) for a in args.argv),
            "size": size, "dtype": args.dtype, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "rows": rows}


def image_markdown(result: dict) -> str:
    lines = [f"### {result['title']}", "", f"Command: `{result['command']}`  ",
             f"{result['size']}x{result['size']}, {result['dtype']}, torch {result['torch']}, {result['date']}; "
             f"RPFM's published time: {RPFM_SECONDS} s per 512x512 image on an A100.", "",
             "| setting | s per image | images/s | RPFM time / ours |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['seconds']:.3f} | {r['images_per_s']:.2f} | "
              f"{'-' if r['vs_rpfm'] is None else format(r['vs_rpfm'], '.2f') + 'x'} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"
