"""``turbonext prepare-data VIDEOS_DIR DATASET_DIR``: videos -> the training dataset layout."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from turbonext.data.prepare import SUMMARY_FILE, benchmark_cache, prepare_dataset


def build_parser() -> argparse.ArgumentParser:
    """The ``turbonext prepare-data`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="turbonext prepare-data",
        description="Turn a folder of videos into DATASET_DIR/video_id/scene_id/{images,poses}/00001.jpg.",
    )
    parser.add_argument("videos_dir", type=Path, help="folder of input videos")
    parser.add_argument("dataset_dir", type=Path, help="output dataset folder (a re-run resumes)")
    parser.add_argument("--size", type=int, default=512, help="output side in pixels (default 512)")
    parser.add_argument("--fps", type=float, default=None, help="sample videos at this frame rate (default: every frame)")
    parser.add_argument("--detector", choices=["auto", "yolo", "mediapipe"], default="auto",
                        help="pose detector: YOLO if its weights are present or downloadable, else mediapipe (default auto)")
    parser.add_argument("--segmenter", choices=["auto", "yolo", "mediapipe"], default="auto", help="person segmenter (default auto)")
    parser.add_argument("--weights", default=None, help="YOLO pose weights (default yolo26n-pose.pt)")
    parser.add_argument("--device", default=None, help="torch device for YOLO (default: ultralytics' choice)")
    parser.add_argument("--margin", type=float, default=0.2, help="crop margin, fraction of the person's size (default 0.2)")
    parser.add_argument("--min-scene-frames", type=int, default=8, help="drop scenes with fewer frames (default 8)")
    parser.add_argument("--cut-threshold", type=float, default=30.0, help="shot-cut score threshold (default 30)")
    parser.add_argument("--keypoint-threshold", type=float, default=0.3, help="keypoint confidence threshold (default 0.3)")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality (default 95)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder (default ~/.cache/turbonext)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--benchmark-cache", action="store_true",
                        help="prepare twice into temporary folders with a fresh cache and print cold vs hot timings "
                             "(DATASET_DIR is not written)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def cli_main(argv: list[str]) -> int:
    """Entry point of ``turbonext prepare-data``; returns the exit code (1 if any video failed)."""
    args = build_parser().parse_args(argv)
    kwargs: dict[str, Any] = {
        "size": args.size, "fps": args.fps, "detector": args.detector, "segmenter": args.segmenter,
        "margin": args.margin, "min_scene_frames": args.min_scene_frames, "cut_threshold": args.cut_threshold,
        "keypoint_threshold": args.keypoint_threshold, "jpeg_quality": args.jpeg_quality,
        "weights": args.weights, "device": args.device, "progress": not args.no_progress,
    }
    if args.benchmark_cache:
        result = benchmark_cache(args.videos_dir, **kwargs)
        speedup = result["cold_s"] / max(result["hot_s"], 1e-9)
        print(f"feature cache benchmark over {int(result['frames'])} frames: cold {result['cold_s']:.2f} s, "
              f"hot {result['hot_s']:.2f} s ({speedup:.1f}x faster; {int(result['hot_scenes_from_cache'])} scenes from cache)")
        return 0
    summary = prepare_dataset(args.videos_dir, args.dataset_dir, cache_dir=args.cache_dir, use_cache=not args.no_cache, **kwargs)
    print(
        f"prepared {summary['videos_done']} videos ({summary['videos_resumed']} already done, {summary['videos_failed']} failed): "
        f"{summary['scenes_written']} scenes, {summary['frames_written']} frames written, "
        f"{summary['frames_no_person']} frames without a person, {summary['scenes_dropped_short']} short scenes dropped "
        f"in {summary['seconds']:.1f} s. Summary: {Path(args.dataset_dir) / SUMMARY_FILE}"
    )
    for failure in summary["failed"]:
        print(f"  failed: {failure['video']}: {failure['error']}")
    return 1 if summary["failed"] else 0
