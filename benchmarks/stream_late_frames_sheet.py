"""A contact sheet of a long demo stream's frames, late ones included (truth above, stream below).

    python benchmarks/stream_late_frames_sheet.py --data data/long128 --scene id034/walk_00 --reference id034/squat_00 \
        --out docs/checks/stream_128_frames_late_id034.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from turbonext import TurboNextPipeline
from turbonext.synthetic import load_scene


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="turbonext-demo")
    p.add_argument("--data", default="data/long128")
    p.add_argument("--scene", default="id034/walk_00")
    p.add_argument("--reference", default="id034/squat_00")
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--out", default="docs/checks/stream_128_frames_late_id034.png")
    args = p.parse_args()
    pipe = TurboNextPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    truth, poses, _ = load_scene(Path(args.data) / args.scene, args.frames)
    reference = load_scene(Path(args.data) / args.reference, 1)[0][0]
    session = pipe.stream(reference_image=reference, window=args.window, output_type="np",
                          generator=torch.Generator().manual_seed(0))
    out = [f for pose in poses for f in session.step(pose)] + session.flush()
    picks = sorted({0, len(out) // 4, len(out) // 2, 3 * len(out) // 4, len(out) - 16, len(out) - 1})
    sheet = np.concatenate([np.concatenate([np.asarray(truth[i]) for i in picks], 1),
                            np.concatenate([out[i] for i in picks], 1)], 0)
    Image.fromarray(sheet).save(args.out)
    background = [float(f[np.asarray(t).max(-1) < 10].mean()) for f, t in zip(out, truth)]
    print(f"{len(out)} frames, frames {picks}; brightest background {max(background):.1f} (0-255); wrote {args.out}")


if __name__ == "__main__":
    main()
