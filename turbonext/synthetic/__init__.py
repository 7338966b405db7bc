"""The synthetic benchmark: procedurally drawn people with known identity and pose.

Light to import (numpy, PIL, tqdm; no torch). ``turbonext synthetic --out DIR`` writes the
dataset; :func:`make_sequence` generates one sequence in memory.

Example::

    from turbonext.synthetic import Identity, make_sequence
    frames, poses, keypoints = make_sequence(Identity.random(3), "walk", num_frames=16, size=256)
"""

from __future__ import annotations

import argparse

from turbonext.synthetic.dataset import (
    HELD_OUT_MOTION,
    SPLITS,
    identity_seed,
    load_scene,
    load_split,
    make_sequence,
    split_of,
    write_dataset,
)
from turbonext.synthetic.figure import Identity, draw_figure
from turbonext.synthetic.motion import MOTIONS, BodyShape, MotionClip, sample_clip

__all__ = [
    "HELD_OUT_MOTION",
    "MOTIONS",
    "SPLITS",
    "BodyShape",
    "Identity",
    "MotionClip",
    "cli_main",
    "draw_figure",
    "identity_seed",
    "load_scene",
    "load_split",
    "make_sequence",
    "sample_clip",
    "split_of",
    "write_dataset",
]


def cli_main(argv: list[str] | None = None) -> int:
    """``turbonext synthetic --out DIR [...]``: write the synthetic benchmark dataset."""
    parser = argparse.ArgumentParser(prog="turbonext synthetic", description="Write the synthetic pose-transfer benchmark.")
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--identities", type=int, default=8, help="number of identities (the last 2 are held out)")
    parser.add_argument("--motions", default=",".join(MOTIONS), help=f"comma-separated subset of {','.join(MOTIONS)}")
    parser.add_argument("--sequences", type=int, default=1, help="sequences per identity and motion")
    parser.add_argument("--frames", type=int, default=16, help="frames per sequence")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels (square)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", action="append", choices=SPLITS, help="write only this split (repeatable)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    args = parser.parse_args(argv)
    motions = [m.strip() for m in args.motions.split(",") if m.strip()]
    try:
        result = write_dataset(
            args.out, num_identities=args.identities, motions=motions, sequences_per_motion=args.sequences,
            frames=args.frames, size=args.size, seed=args.seed, split=args.split, quality=args.quality,
        )
    except ValueError as err:
        parser.error(str(err))
    counts = ", ".join(f"{name}: {len(result[name])}" for name in SPLITS)
    print(f"wrote {args.out} ({counts} scenes of {args.frames} frames at {args.size}px)")
    return 0
