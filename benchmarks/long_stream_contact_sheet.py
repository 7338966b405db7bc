"""A 96-frame stream of the embedded demo on a held-out identity, looked at: prints the mean background
brightness (0-255 where the truth is black) per 16 frames and writes a contact sheet: the truth row, then every
8th streamed frame of each stream (the staggered layout, seed 0; the uniform layout, seeds 0 and 1; window 8).

    python benchmarks/long_stream_contact_sheet.py TAG   # writes TAG.png
"""

import sys
import warnings

import numpy as np
import torch
from PIL import Image

from turbonext import TurboNextPipeline
from turbonext.evaluation.metrics import background_brightness
from turbonext.jobs.driving_inputs import synthetic_demo_inputs


def main(tag: str, num_frames: int = 96) -> None:
    warnings.simplefilter("ignore")
    pipe = TurboNextPipeline.from_pretrained("turbonext-demo")
    pipe.set_progress_bar_config(disable=True)
    demo = synthetic_demo_inputs(size=256, num_frames=num_frames, identity_index=119)
    rows = [np.concatenate([np.asarray(demo.truth[i].resize((128, 128))) for i in range(0, num_frames, 8)], axis=1)]
    for schedule, seed in (("staggered", 0), ("uniform", 0), ("uniform", 1)):
        session = pipe.stream(reference_image=demo.reference, generator=torch.Generator().manual_seed(seed), window=8,
                              schedule=schedule)
        frames = [f for p in demo.poses for f in session.step(p)] + session.flush()
        bg = [background_brightness(f, t) for f, t in zip(frames, demo.truth)]
        print(tag, schedule, "seed", seed, "background per 16 frames:",
              [round(float(np.mean(bg[i:i + 16])), 1) for i in range(0, num_frames, 16)])
        rows.append(np.concatenate([np.asarray(frames[i].resize((128, 128))) for i in range(0, num_frames, 8)], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(f"{tag}.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "long_stream")
