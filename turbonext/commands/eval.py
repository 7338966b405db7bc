"""``turbonext eval --model M --data DIR``: score a model on held-out synthetic sequences."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from turbonext.evaluation.ablations import evaluate_ablations, format_ablation_table
from turbonext.evaluation.held_out import CopyReferenceBaseline, evaluate, format_table
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.synthetic.dataset import SPLITS
from turbonext.utils.devices import default_device


def cli_main(argv: list[str] | None = None) -> int:
    """``turbonext eval --model PATH --data DIR [--split ...] [--json out.json]``."""
    parser = argparse.ArgumentParser(prog="turbonext eval", description="Evaluate a model on held-out synthetic sequences.")
    parser.add_argument("--model", required=True, help="a TurboNextPipeline folder or hub id (from_pretrained), or 'copy-reference' for the trivial baseline")
    parser.add_argument("--data", required=True, help="a dataset written by `turbonext synthetic`")
    parser.add_argument("--split", default="test_identity", choices=SPLITS)
    parser.add_argument("--num-frames", type=int, default=None, help="frames per scene (default: all)")
    parser.add_argument("--steps", type=int, default=4, help="num_inference_steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--streaming", action="store_true", help="render frame by frame through pipe.stream()")
    parser.add_argument("--window", type=int, default=16, help="with --streaming: the stream's latent window (frames)")
    parser.add_argument("--max-sequences", type=int, default=None)
    parser.add_argument("--reference", default="first", choices=("first", "other"))
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-lpips", action="store_true", help="do not try LPIPS")
    parser.add_argument("--fid", action="store_true", help="also compute FID (needs torch-fidelity and its weights)")
    parser.add_argument("--ablations", action="store_true",
                        help="also score with the reference attention disabled and with the pose guider zeroed")
    parser.add_argument("--json", default=None, help="write the full result here")
    args = parser.parse_args(argv)
    if args.ablations and args.model == "copy-reference":
        parser.error("--ablations needs a TurboNextPipeline model")

    if args.model == "copy-reference":
        pipe: Any = CopyReferenceBaseline()
    else:
        device = args.device or default_device()
        pipe = TurboNextPipeline.from_pretrained(args.model).to(device)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
    settings = dict(dataset_dir=args.data, split=args.split, num_frames=args.num_frames, num_inference_steps=args.steps,
                    seed=args.seed, streaming=args.streaming, window=args.window, max_sequences=args.max_sequences,
                    reference=args.reference, lpips=not args.no_lpips, fid=args.fid)
    try:
        if args.ablations:
            variants = evaluate_ablations(pipe, evaluate, **settings)
            result = dict(variants["full model"], ablations={k: v["metrics"] for k, v in variants.items()})
        else:
            result = evaluate(pipe, **settings)
    except ValueError as err:
        parser.error(str(err))
    result["model"] = args.model
    print(format_table(result))
    if args.ablations:
        print(format_ablation_table(variants))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(_finite(result), indent=1, allow_nan=False) + "\n")
        print(f"wrote {args.json}")
    return 0


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by None and numpy scalars by Python ones (for JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
