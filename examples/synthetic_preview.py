"""Preview the synthetic benchmark: a grid of identities x motions (figure | pose map per cell).

    python examples/synthetic_preview.py --out docs/synthetic_preview.png
    python examples/synthetic_preview.py --out /tmp/preview.png --gif /tmp/preview.gif

Rows are identities (as in the dataset seeded ``--seed``), columns the motions; each cell shows
the drawn figure and the rainbow pose map it is conditioned on. The GIF animates every frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from turbonext.synthetic import MOTIONS, Identity, identity_seed, make_sequence


def preview_frames(identities: int, size: int, frames: int, seed: int) -> list[Image.Image]:
    """One grid image per time step: rows = identities, columns = motions (figure | pose)."""
    label_h = 14
    cells = {}
    for i in range(identities):
        ident = Identity.random(identity_seed(seed, i))
        for j, motion in enumerate(MOTIONS):
            cells[i, j] = make_sequence(ident, motion, num_frames=frames, size=size, seed=seed * 100 + i * 10 + j)
    grids = []
    for t in range(frames):
        grid = Image.new("RGB", (len(MOTIONS) * 2 * size, label_h + identities * size), (0, 0, 0))
        draw = ImageDraw.Draw(grid)
        for j, motion in enumerate(MOTIONS):
            draw.text((j * 2 * size + 4, 1), motion, fill=(220, 220, 220))
            draw.line([(j * 2 * size, 0), (j * 2 * size, grid.height)], fill=(60, 60, 60))
        for (i, j), (figures, poses, _) in cells.items():
            grid.paste(figures[t], (j * 2 * size, label_h + i * size))
            grid.paste(poses[t], (j * 2 * size + size, label_h + i * size))
        grids.append(grid)
    return grids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/synthetic_preview.png", help="PNG of one time step")
    parser.add_argument("--gif", default=None, help="also write an animated GIF of all frames")
    parser.add_argument("--identities", type=int, default=5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--frame", type=int, default=5, help="the time step shown in the PNG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.frame < args.frames:
        parser.error(f"--frame must be in [0, {args.frames}); got {args.frame}.")
    grids = preview_frames(args.identities, args.size, args.frames, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grids[args.frame].save(args.out, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KB)")
    if args.gif:
        palette = [g.convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for g in grids]
        palette[0].save(args.gif, save_all=True, append_images=palette[1:], duration=100, loop=0, optimize=True)
        print(f"wrote {args.gif} ({Path(args.gif).stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
