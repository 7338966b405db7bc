"""``turbonext eval --model M --data DIR``: score a model on held-out synthetic sequences."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from turbonext.evaluation.ablations import compare_ablations, evaluate_ablations, format_ablation_table
from turbonext.evaluation.group_scenes import evaluate_group_scenes, format_group_scenes
from turbonext.evaluation.held_out import BASELINES, evaluate, format_table
from turbonext.evaluation.long_stream import evaluate_long_stream, format_long_stream, plot_long_stream
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.pose.detectors import get_detector
from turbonext.synthetic.dataset import SPLITS
from turbonext.utils.devices import default_device


BASELINE_MODELS = {name.replace(" ", "-"): cls for name, cls in BASELINES.items()}  # copy-reference, black-frame


def build_parser() -> argparse.ArgumentParser:
    """The ``turbonext eval`` arguments."""
    parser = argparse.ArgumentParser(prog="turbonext eval", description="Evaluate a model on held-out synthetic sequences.")
    parser.add_argument("--model", required=True,
                        help=f"a TurboNextPipeline folder or hub id (from_pretrained), or a baseline: {', '.join(BASELINE_MODELS)}")
    parser.add_argument("--data", default=None, help="a dataset written by `turbonext synthetic` (not needed with "
                                                     "--group-scenes)")
    parser.add_argument("--split", default="test_identity", choices=SPLITS,
                        help="test_identity (default) for reported numbers; val_identity for recipe decisions")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per scene (default: all)")
    parser.add_argument("--steps", type=int, default=4, help="num_inference_steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--streaming", action="store_true",
                        help="long-stream mode: render every scene through pipe.stream() frame by frame AND as one "
                             "offline clip, and report per-frame-index IoU, colour error, background brightness and "
                             "PSNR for both (JSON, plus a PNG plot beside it); e.g. --num-frames 128 on a dataset "
                             "written with `turbonext synthetic --frames 128`")
    parser.add_argument("--window", type=int, default=16, help="with --streaming: the stream's latent window (frames)")
    parser.add_argument("--frames-per-level", type=int, default=None,
                        help="with --streaming: frames that enter (and leave) the window together")
    parser.add_argument("--schedule", default=None, choices=("uniform", "staggered"),
                        help="with --streaming: the window layout (default: the model's config.stream_schedule)")
    parser.add_argument("--max-identities", type=int, default=None,
                        help="with --streaming: only the first this many identities of the split")
    parser.add_argument("--scenes-per-identity", type=int, default=None,
                        help="with --streaming: only this many scenes (motions) of each identity")
    parser.add_argument("--renderings", default="stream,offline",
                        help="with --streaming: what to render and score, comma-separated from stream (pipe.stream), "
                             "offline (pipe(...), blended windows), chain (pipe(..., long_video='chain'))")
    parser.add_argument("--offline-window", type=int, default=None,
                        help="with --streaming: window_size of the offline renderings (default: the pipeline's, 16)")
    parser.add_argument("--offline-overlap", type=int, default=None,
                        help="with --streaming: window_overlap of the offline renderings (default 4; for chain: the "
                             "context frames carried into each window)")
    parser.add_argument("--chain-context", default=None, choices=("renoise", "clean"),
                        help="with --renderings ...,chain: how the chained windows' context is given to the model "
                             "(default: the model's own, from its config.stream_schedule)")
    parser.add_argument("--plot", default=None,
                        help="with --streaming: where to write the PNG plot (default: beside --json, same name)")
    parser.add_argument("--max-sequences", type=int, default=None)
    parser.add_argument("--reference", default="other", choices=("other", "first"),
                        help="other (default): the first frame of another clip of the same identity, every frame scored; "
                             "first: the clip's own first frame, 1-7 frames from the scored ones. 'first' FLATTERS: "
                             "copying the reference scores well; never report it")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-lpips", action="store_true", help="do not try LPIPS")
    parser.add_argument("--fid", action="store_true", help="also compute FID (needs torch-fidelity and its weights)")
    parser.add_argument("--ablations", action="store_true",
                        help="also score with the reference attention disabled, the pose guider zeroed and the poses "
                             "shuffled (another identity's clip), with how many identities each module helps in")
    parser.add_argument("--pose-accuracy", default=None, metavar="DETECTOR",
                        help="also score pose accuracy (PCK@0.2, OKS) of the frames with this pose detector (auto, "
                             "yolo, mediapipe), with its ceiling on the ground-truth frames")
    parser.add_argument("--group-scenes", type=int, default=None, metavar="N",
                        help="instead of --data's scenes: N generated scenes of --people people (one pose map with "
                             "every skeleton, a group photo as reference), each person scored in their own slot")
    parser.add_argument("--people", type=int, default=2, help="with --group-scenes: people per scene (2-4)")
    parser.add_argument("--json", default=None, help="write the full result here")
    return parser


def load_model(name: str, device: str | None) -> Any:
    """A baseline from :data:`BASELINE_MODELS`, or a TurboNextPipeline on ``device`` with its progress bar off."""
    if name in BASELINE_MODELS:
        return BASELINE_MODELS[name]()
    pipe = TurboNextPipeline.from_pretrained(name).to(device or default_device())
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe


def cli_main(argv: list[str] | None = None) -> int:
    """``turbonext eval --model PATH --data DIR [--split ...] [--json out.json]``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ablations and args.model in BASELINE_MODELS:
        parser.error("--ablations needs a TurboNextPipeline model")
    if args.streaming and (args.ablations or args.model in BASELINE_MODELS):
        parser.error("--streaming compares a model's stream with its offline clip: no --ablations, no baseline model")
    if not args.data and not args.group_scenes:
        parser.error("--data is required (a dataset written by `turbonext synthetic`), unless --group-scenes N")
    pipe = load_model(args.model, args.device)
    if args.group_scenes:
        return _group_scenes(parser, args, pipe)
    if args.streaming:
        return _long_stream(parser, args, pipe)
    settings = dict(dataset_dir=args.data, split=args.split, num_frames=args.num_frames, num_inference_steps=args.steps,
                    seed=args.seed, max_sequences=args.max_sequences,
                    reference=args.reference, lpips=not args.no_lpips, fid=args.fid)
    if args.pose_accuracy:
        try:
            settings["pose_detector"] = get_detector(args.pose_accuracy)
        except (ImportError, ValueError) as err:
            parser.error(f"--pose-accuracy: {err}")
    try:
        if args.ablations:
            variants = evaluate_ablations(pipe, evaluate, **settings)
            result = dict(variants["full model"], ablations=compare_ablations(variants))
        else:
            result = evaluate(pipe, **settings)
    except ValueError as err:
        parser.error(str(err))
    result["model"] = args.model
    print(format_table(result))
    if args.ablations:
        print(format_ablation_table(variants))
    if args.json:
        write_json(args.json, result)
    return 0


def _group_scenes(parser: argparse.ArgumentParser, args: argparse.Namespace, pipe: Any) -> int:
    """``--group-scenes N``: :func:`~turbonext.evaluation.group_scenes.evaluate_group_scenes`, its table and JSON."""
    try:
        result = evaluate_group_scenes(pipe, num_scenes=args.group_scenes, people=args.people,
                                       num_frames=args.num_frames or 8, num_inference_steps=args.steps, seed=args.seed)
    except ValueError as err:
        parser.error(str(err))
    result["model"] = args.model
    print(format_group_scenes(result))
    if args.json:
        write_json(args.json, result)
    return 0


def _long_stream(parser: argparse.ArgumentParser, args: argparse.Namespace, pipe: Any) -> int:
    """``--streaming``: :func:`~turbonext.evaluation.long_stream.evaluate_long_stream`, its table, JSON and plot."""
    try:
        result = evaluate_long_stream(pipe, args.data, split=args.split, num_frames=args.num_frames,
                                      num_inference_steps=args.steps, seed=args.seed, window=args.window,
                                      frames_per_level=args.frames_per_level, schedule=args.schedule,
                                      max_identities=args.max_identities, scenes_per_identity=args.scenes_per_identity,
                                      renderings=[r.strip() for r in args.renderings.split(",") if r.strip()],
                                      offline_window=args.offline_window, offline_overlap=args.offline_overlap,
                                      chain_context=args.chain_context)
    except ValueError as err:
        parser.error(str(err))
    result["model"] = args.model
    print(format_long_stream(result))
    if args.json:
        write_json(args.json, result)
    plot = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if plot:
        try:
            print(f"wrote {plot_long_stream(result, plot)}")
        except ImportError as err:  # the JSON is written; only the picture needs matplotlib
            print(f"no plot: {err}")
    return 0


def write_json(path: str | Path, result: dict) -> None:
    """``result`` as JSON at ``path`` (NaN written as null); says where."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_finite(result), indent=1, allow_nan=False) + "\n")
    print(f"wrote {path}")


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
