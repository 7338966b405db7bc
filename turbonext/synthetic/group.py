"""Scenes with several people: each drawn in its own slot of the frame, one pose map holding every skeleton.

Used to test what several people do to a model that is driven by one pose map: the map carries every person,
the output should render every person, each where their skeleton is. People stand side by side without
overlapping, so each person's pixels (``masks``) and box are known exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from turbonext.pose import render_pose
from turbonext.synthetic.figure import Identity, draw_figure
from turbonext.synthetic.motion import sample_clip


class GroupScene(NamedTuple):
    """``frames`` and ``poses`` (F PIL images), ``keypoints`` (P, F, 17, 3) in frame pixels and ``masks``
    (P, F, H, W) bool: where each person is drawn."""

    frames: list[Image.Image]
    poses: list[Image.Image]
    keypoints: np.ndarray
    masks: np.ndarray


def make_group_sequence(identities: list[Identity], motions: list[str], num_frames: int = 8, size: int = 256,
                        seed: int = 0, pose_style: str = "turbonext") -> GroupScene:
    """``len(identities)`` people (2-4), person ``p`` doing ``motions[p]`` in the ``p``-th of as many equal
    vertical slots, each drawn at the slot's scale; deterministic in ``seed``."""
    people = len(identities)
    if not 2 <= people <= 4 or len(motions) != people:
        raise ValueError(f"a group scene has 2 to 4 people, one motion each; got {people} people, "
                         f"{len(motions)} motions.")
    slot = size / people
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    keypoints = np.zeros((people, num_frames, 17, 3), np.float32)
    masks = np.zeros((people, num_frames, size, size), bool)
    for p, (ident, motion) in enumerate(zip(identities, motions)):
        rng = np.random.default_rng([int(seed), p, 0x6A0])
        clip = sample_clip(motion, ident.shape, size, num_frames, rng)
        kp, depth = clip.sequence(num_frames)  # (F, 17, 3) for a full frame: squeeze into the slot
        squeeze = slot / size
        kp = kp.copy()
        kp[..., 0] = kp[..., 0] * squeeze + p * slot
        kp[..., 1] = kp[..., 1] * squeeze + size * (1 - squeeze)  # feet on the frame's floor
        for f in range(num_frames):
            figure = np.asarray(draw_figure(ident, kp[f], size, depth=depth[f] * squeeze, scale=clip.scale * squeeze))
            drawn = figure.max(axis=2) > 0
            frames[f][drawn] = figure[drawn]
            masks[p, f] = drawn
        keypoints[p] = kp
    poses = [render_pose(keypoints[:, f], size=(size, size), style=pose_style) for f in range(num_frames)]
    return GroupScene([Image.fromarray(f) for f in frames], poses, keypoints, masks)
