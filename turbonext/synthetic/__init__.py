"""The synthetic benchmark: procedurally drawn people with known identity and pose.

Light to import (numpy, PIL, tqdm; no torch). ``turbonext synthetic --out DIR`` writes the
dataset (:func:`write_dataset`); :func:`make_sequence` generates one sequence in memory.

Example::

    from turbonext.synthetic import Identity, make_sequence
    frames, poses, keypoints = make_sequence(Identity.random(3), "walk", num_frames=16, size=256)
"""

from __future__ import annotations

from turbonext.synthetic.dataset import (
    HELD_OUT_MOTION,
    SPLITS,
    held_out_counts,
    identity_palette,
    identity_role,
    identity_seed,
    load_scene,
    load_split,
    make_sequence,
    off_palette,
    split_counts,
    split_of,
    write_dataset,
)
from turbonext.synthetic.figure import CLOTH_COLORS, HELD_OUT_CLOTH_COLORS, Identity, draw_figure
from turbonext.synthetic.motion import MOTIONS, BodyShape, MotionClip, sample_clip


__all__ = [
    "CLOTH_COLORS",
    "HELD_OUT_CLOTH_COLORS",
    "HELD_OUT_MOTION",
    "MOTIONS",
    "SPLITS",
    "BodyShape",
    "Identity",
    "MotionClip",
    "draw_figure",
    "held_out_counts",
    "identity_palette",
    "identity_role",
    "identity_seed",
    "load_scene",
    "load_split",
    "make_sequence",
    "off_palette",
    "sample_clip",
    "split_counts",
    "split_of",
    "write_dataset",
]
