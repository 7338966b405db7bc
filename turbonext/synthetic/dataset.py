"""Synthetic sequences and the on-disk benchmark in the training layout, with a fixed split.

Layout written by :func:`write_dataset` (the same as real prepared data)::

    out_dir/split.json
    out_dir/<video_id>/identity.json              # one video per identity, e.g. id003
    out_dir/<video_id>/<scene_id>/images/00001.jpg  # scene = one motion sequence, e.g. walk_00
    out_dir/<video_id>/<scene_id>/poses/00001.jpg   # render_pose of the figure's own keypoints
    out_dir/<video_id>/<scene_id>/keypoints.npy     # float32 (F, 17, 3) [x px, y px, visibility]

The split is fixed by identity index and motion, whatever subset is written: the last two
identities are held out (``test_identity``: on the training motions), the motion "kick" is held
out (``test_motion``: training identities doing it), ``test_both`` is held-out identities
kicking, and everything else is ``train``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from turbonext.pose import render_pose
from turbonext.synthetic.figure import Identity, draw_figure
from turbonext.synthetic.motion import MOTIONS, sample_clip


HELD_OUT_MOTION = "kick"
NUM_HELD_OUT_IDENTITIES = 2
SPLITS: tuple[str, ...] = ("train", "test_identity", "test_motion", "test_both")


def make_sequence(
    identity: Identity | int,
    motion: str,
    num_frames: int = 16,
    size: int = 256,
    seed: int = 0,
) -> tuple[list[Image.Image], list[Image.Image], np.ndarray]:
    """Generate one sequence in memory.

    Args:
        identity: an :class:`Identity`, or an int seed for :meth:`Identity.random`.
        motion: one of :data:`~turbonext.synthetic.motion.MOTIONS`.
        num_frames: number of frames F.
        size: square image size in pixels.
        seed: seeds the motion's speed, phase, facing, scale and position.

    Returns:
        (frames, poses, keypoints): F RGB figures on black, F rainbow pose maps of the same
        keypoints, and the keypoints as float32 (F, 17, 3) [x px, y px, visibility].
    """
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {MOTIONS}.")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}.")
    if size < 32:
        raise ValueError(f"size must be >= 32 px; got {size}.")
    ident = identity if isinstance(identity, Identity) else Identity.random(int(identity))
    rng = np.random.default_rng([int(seed), MOTIONS.index(motion), 0x5E0])
    clip = sample_clip(motion, ident.shape, size, num_frames, rng)
    keypoints, depth = clip.sequence(num_frames)  # (F, 17, 3), (F, 17)
    frames = [draw_figure(ident, kp, size, depth=d, scale=clip.scale) for kp, d in zip(keypoints, depth)]
    poses = [render_pose(kp[None], size=(size, size)) for kp in keypoints]
    return frames, poses, keypoints


def split_of(identity_index: int, motion: str, num_identities: int) -> str:
    """The fixed split of (identity, motion): see the module docstring."""
    held_id = identity_index >= num_identities - NUM_HELD_OUT_IDENTITIES
    held_motion = motion == HELD_OUT_MOTION
    return {(False, False): "train", (True, False): "test_identity", (False, True): "test_motion", (True, True): "test_both"}[
        (held_id, held_motion)
    ]


def identity_seed(seed: int, identity_index: int) -> int:
    """The :meth:`Identity.random` seed of identity ``identity_index`` in a dataset seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(identity_index), 0x1D]).generate_state(1)[0])


def _sequence_seed(seed: int, identity_index: int, motion: str, k: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(identity_index), MOTIONS.index(motion), int(k)]).generate_state(1)[0])


def write_dataset(
    out_dir: str | Path,
    num_identities: int = 8,
    motions: Sequence[str] = MOTIONS,
    sequences_per_motion: int = 1,
    frames: int = 16,
    size: int = 256,
    seed: int = 0,
    split: str | Sequence[str] | None = None,
    quality: int = 95,
    progress: bool = True,
) -> dict:
    """Write the synthetic benchmark to ``out_dir`` and return the contents of its ``split.json``.

    Args:
        out_dir: output folder (created).
        num_identities: identities N (>= 3); the last two are held out.
        motions: motions to write (each must be in MOTIONS).
        sequences_per_motion: sequences per (identity, motion), each with its own speed/facing/place.
        frames: frames per sequence.
        size: square image size in pixels.
        seed: dataset seed; everything written is a function of it (same seed, same bytes).
        split: write only these splits (a name or list of names from SPLITS); None writes all.
            The assignment itself never changes, so a test-only dataset matches a full one.
        quality: JPEG quality.
        progress: show a tqdm bar.

    Returns:
        {"train": ["id000/walk_00", ...], "test_identity": [...], "test_motion": [...],
        "test_both": [...], "meta": {...}}: scene paths relative to ``out_dir`` per split.
    """
    if num_identities < NUM_HELD_OUT_IDENTITIES + 1:
        raise ValueError(f"num_identities must be >= {NUM_HELD_OUT_IDENTITIES + 1} (two are held out); got {num_identities}.")
    unknown = [m for m in motions if m not in MOTIONS]
    if unknown or not motions:
        raise ValueError(f"motions must be a non-empty subset of {MOTIONS}; got {list(motions)}.")
    if sequences_per_motion < 1 or frames < 1:
        raise ValueError(f"sequences_per_motion and frames must be >= 1; got {sequences_per_motion}, {frames}.")
    wanted = set(SPLITS if split is None else ([split] if isinstance(split, str) else split))
    if not wanted <= set(SPLITS):
        raise ValueError(f"split must be None or names from {SPLITS}; got {split!r}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    jobs = [
        (i, m, k)
        for i in range(num_identities)
        for m in motions
        for k in range(sequences_per_motion)
        if split_of(i, m, num_identities) in wanted
    ]
    result: dict = {name: [] for name in SPLITS}
    identities = {i: Identity.random(identity_seed(seed, i)) for i in sorted({i for i, _, _ in jobs})}
    for i, ident in identities.items():
        (out / f"id{i:03d}").mkdir(exist_ok=True)
        (out / f"id{i:03d}" / "identity.json").write_text(json.dumps(ident.to_dict(), indent=1) + "\n")
    for i, motion, k in tqdm(jobs, desc="synthetic scenes", disable=not progress):
        scene = f"id{i:03d}/{motion}_{k:02d}"
        imgs, poses, keypoints = make_sequence(identities[i], motion, frames, size, _sequence_seed(seed, i, motion, k))
        for sub, images in (("images", imgs), ("poses", poses)):
            folder = out / scene / sub
            folder.mkdir(parents=True, exist_ok=True)
            for n, image in enumerate(images, start=1):
                image.save(folder / f"{n:05d}.jpg", quality=quality)
        np.save(out / scene / "keypoints.npy", keypoints)
        result[split_of(i, motion, num_identities)].append(scene)
    result["meta"] = {
        "num_identities": num_identities,
        "held_out_identities": [f"id{i:03d}" for i in range(num_identities - NUM_HELD_OUT_IDENTITIES, num_identities)],
        "held_out_motion": HELD_OUT_MOTION,
        "motions": list(motions),
        "sequences_per_motion": sequences_per_motion,
        "frames": frames,
        "size": size,
        "seed": seed,
    }
    (out / "split.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def load_split(dataset_dir: str | Path) -> dict:
    """Read ``split.json`` of a dataset written by :func:`write_dataset`."""
    path = Path(dataset_dir) / "split.json"
    if not path.is_file():
        raise ValueError(f"{path} not found; write the dataset with `turbonext synthetic --out {dataset_dir}` first.")
    return json.loads(path.read_text())


def load_scene(
    scene_dir: str | Path, num_frames: int | None = None
) -> tuple[list[Image.Image], list[Image.Image], np.ndarray | None]:
    """Read one scene: (frames, poses, keypoints (F, 17, 3) or None when the scene has no
    keypoints.npy), the first ``num_frames`` if given."""
    scene = Path(scene_dir)
    image_paths = sorted((scene / "images").glob("*.jpg"))
    pose_paths = sorted((scene / "poses").glob("*.jpg"))
    if not image_paths or len(image_paths) != len(pose_paths):
        raise ValueError(f"{scene} must hold images/*.jpg and poses/*.jpg in equal, non-zero numbers.")
    count = len(image_paths) if num_frames is None else min(int(num_frames), len(image_paths))
    frames = [Image.open(p).convert("RGB") for p in image_paths[:count]]
    poses = [Image.open(p).convert("RGB") for p in pose_paths[:count]]
    kp_path = scene / "keypoints.npy"
    keypoints = np.load(kp_path)[:count] if kp_path.is_file() else None
    return frames, poses, keypoints
