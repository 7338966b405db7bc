"""``turbonext synthetic --out DIR``: write the synthetic pose-transfer benchmark dataset."""

from __future__ import annotations

import argparse

from turbonext.synthetic.dataset import DEFAULT_NUM_IDENTITIES, OFF_PALETTE_FRACTION, SPLITS, write_dataset
from turbonext.synthetic.motion import MOTIONS


def cli_main(argv: list[str] | None = None) -> int:
    """``turbonext synthetic --out DIR [...]``: write the synthetic benchmark dataset."""
    parser = argparse.ArgumentParser(prog="turbonext synthetic", description="Write the synthetic pose-transfer benchmark.")
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--identities", type=int, default=DEFAULT_NUM_IDENTITIES,
                        help="number of identities: training ones, then validation, then test (the last ones)")
    parser.add_argument("--val-identities", type=int, default=None,
                        help="validation identities, for recipe decisions (default: min(8, N // 6), at least 1)")
    parser.add_argument("--test-identities", type=int, default=None,
                        help="test identities, for reported numbers (default: min(16, N // 3), at least 1)")
    parser.add_argument("--off-palette", type=float, default=OFF_PALETTE_FRACTION,
                        help="share of validation and of test identities dressed in colours no training identity wears")
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
            num_val_identities=args.val_identities, num_test_identities=args.test_identities,
            off_palette_fraction=args.off_palette,
        )
    except ValueError as err:
        parser.error(str(err))
    counts = ", ".join(f"{name}: {len(result[name])}" for name in SPLITS)
    meta = result["meta"]
    print(f"wrote {args.out} ({counts} scenes of {args.frames} frames at {args.size}px; "
          f"{len(meta['val_identities'])} validation and {len(meta['test_identities'])} test identities, "
          f"{len(meta['off_palette_identities'])} of them off the training palette)")
    return 0
