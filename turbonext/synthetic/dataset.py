"""Synthetic sequences and the on-disk benchmark in the training layout, with a fixed split.

Layout written by :func:`write_dataset` (the same as real prepared data)::

    out_dir/split.json                            # scene lists per split and "meta" (counts, palettes)
    out_dir/<video_id>/identity.json              # one video per identity, e.g. id003 ("palette" inside)
    out_dir/<video_id>/<scene_id>/images/00001.jpg  # scene = one motion sequence, e.g. walk_00
    out_dir/<video_id>/<scene_id>/poses/00001.jpg   # render_pose of the figure's own keypoints
    out_dir/<video_id>/<scene_id>/keypoints.npy     # float32 (F, 17, 3) [x px, y px, visibility]

The split is fixed by identity index and motion, whatever subset is written. Of N identities, the
last T are **test** identities and the V before them **validation** identities; the rest train
(defaults: T = min(16, N // 3), V = min(8, N // 6), each at least 1; the default N = 48 gives 24
train, 8 val, 16 test). The motion "kick" is held out. Splits:

* ``train``: training identities on the training motions;
* ``val_identity``: validation identities on the training motions. Tune recipes here, never on test;
* ``val_both``: validation identities kicking;
* ``test_identity``: test identities on the training motions (what tables report);
* ``test_motion``: training identities kicking;
* ``test_both``: test identities kicking.

Held-out colours: within the validation and within the test identities, every second one (a
fraction ``off_palette_fraction``, default 0.5) wears clothes from
:data:`~turbonext.synthetic.figure.HELD_OUT_CLOTH_COLORS`, colours no training identity wears; its
``identity.json`` says ``"palette": "held_out"`` and ``split.json``'s meta lists them.

Every identity has one scene per motion (``sequences_per_motion`` more), so a reference image can
always come from another clip of the same person (:mod:`turbonext.evaluation.held_out` does so).

Datasets written before the validation split (meta without ``test_identities``) held out the last
two identities as test and had no validation identities; :func:`split_counts` reads either.
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
NUM_HELD_OUT_IDENTITIES = 2  # legacy: datasets without a validation split held out the last two (all test)
DEFAULT_NUM_IDENTITIES = 48
MAX_VAL_IDENTITIES = 8
MAX_TEST_IDENTITIES = 16
OFF_PALETTE_FRACTION = 0.5
SPLITS: tuple[str, ...] = ("train", "val_identity", "val_both", "test_identity", "test_motion", "test_both")


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


def held_out_counts(num_identities: int) -> tuple[int, int]:
    """The default (validation, test) identity counts of a dataset of ``num_identities``:
    min(8, N // 6) and min(16, N // 3), each at least 1."""
    n = int(num_identities)
    return min(MAX_VAL_IDENTITIES, max(1, n // 6)), min(MAX_TEST_IDENTITIES, max(1, n // 3))


def _counts(num_identities: int, num_val_identities: int | None, num_test_identities: int | None) -> tuple[int, int]:
    val, test = held_out_counts(num_identities)
    val = val if num_val_identities is None else int(num_val_identities)
    test = test if num_test_identities is None else int(num_test_identities)
    if val < 0 or test < 1 or num_identities - val - test < 1:
        raise ValueError(f"need >= 0 validation, >= 1 test and >= 1 training identity; got {val} validation and "
                         f"{test} test of {num_identities} identities.")
    return val, test


def identity_role(identity_index: int, num_identities: int, num_val_identities: int | None = None,
                  num_test_identities: int | None = None) -> str:
    """"train", "val" or "test" for identity ``identity_index`` (the last test, the val before them)."""
    val, test = _counts(num_identities, num_val_identities, num_test_identities)
    if identity_index >= num_identities - test:
        return "test"
    return "val" if identity_index >= num_identities - test - val else "train"


def split_of(identity_index: int, motion: str, num_identities: int, num_val_identities: int | None = None,
             num_test_identities: int | None = None) -> str:
    """The fixed split of (identity, motion): see the module docstring. ``None`` counts take
    :func:`held_out_counts`; a legacy dataset is ``num_val_identities=0, num_test_identities=2``."""
    role = identity_role(identity_index, num_identities, num_val_identities, num_test_identities)
    held_motion = motion == HELD_OUT_MOTION
    return {("train", False): "train", ("train", True): "test_motion", ("val", False): "val_identity",
            ("val", True): "val_both", ("test", False): "test_identity", ("test", True): "test_both"}[(role, held_motion)]


def off_palette(identity_index: int, num_identities: int, num_val_identities: int | None = None,
                num_test_identities: int | None = None, fraction: float = OFF_PALETTE_FRACTION) -> bool:
    """Whether identity ``identity_index`` wears the held-out palette: a ``fraction`` of the validation
    identities and of the test identities (for 0.5, every second one of each group); never a training one."""
    role = identity_role(identity_index, num_identities, num_val_identities, num_test_identities)
    if role == "train":
        return False
    val, test = _counts(num_identities, num_val_identities, num_test_identities)
    k = identity_index - (num_identities - test if role == "test" else num_identities - test - val)
    return int((k + 1) * fraction + 1e-9) > int(k * fraction + 1e-9)


def split_counts(index: dict) -> tuple[int, int]:
    """(validation, test) identity counts of a loaded ``split.json``; (0, 2) for a legacy dataset."""
    meta = index.get("meta", {})
    if "test_identities" in meta:
        return len(meta.get("val_identities", [])), len(meta["test_identities"])
    return 0, len(meta.get("held_out_identities", [])) or NUM_HELD_OUT_IDENTITIES


def identity_palette(dataset_dir: str | Path, video_id: str) -> str:
    """The clothing palette of ``video_id`` ("train" or "held_out") from its ``identity.json``; "train"
    when the file or the key is missing (datasets written before palettes)."""
    path = Path(dataset_dir) / video_id / "identity.json"
    if not path.is_file():
        return "train"
    return str(json.loads(path.read_text()).get("palette", "train"))


def identity_seed(seed: int, identity_index: int) -> int:
    """The :meth:`Identity.random` seed of identity ``identity_index`` in a dataset seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(identity_index), 0x1D]).generate_state(1)[0])


def _sequence_seed(seed: int, identity_index: int, motion: str, k: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(identity_index), MOTIONS.index(motion), int(k)]).generate_state(1)[0])


def write_dataset(
    out_dir: str | Path,
    num_identities: int = DEFAULT_NUM_IDENTITIES,
    motions: Sequence[str] = MOTIONS,
    sequences_per_motion: int = 1,
    frames: int = 16,
    size: int = 256,
    seed: int = 0,
    split: str | Sequence[str] | None = None,
    quality: int = 95,
    progress: bool = True,
    num_val_identities: int | None = None,
    num_test_identities: int | None = None,
    off_palette_fraction: float = OFF_PALETTE_FRACTION,
) -> dict:
    """Write the synthetic benchmark to ``out_dir`` and return the contents of its ``split.json``.

    Args:
        out_dir: output folder (created).
        num_identities: identities N (>= 3): train, then validation, then test (the last ones).
        motions: motions to write (each must be in MOTIONS).
        sequences_per_motion: sequences per (identity, motion), each with its own speed/facing/place.
        frames: frames per sequence.
        size: square image size in pixels.
        seed: dataset seed; everything written is a function of it (same seed, same bytes).
        split: write only these splits (a name or list of names from SPLITS); None writes all.
            The assignment itself never changes, so a test-only dataset matches a full one.
        quality: JPEG quality.
        progress: show a tqdm bar.
        num_val_identities / num_test_identities: held-out identity counts (None: :func:`held_out_counts`,
            8 and 16 for N >= 48). ``0`` and ``2`` reproduce a dataset from before the validation split.
        off_palette_fraction: the share of validation and of test identities that wear
            :data:`~turbonext.synthetic.figure.HELD_OUT_CLOTH_COLORS` (0 = none, as before palettes).

    Returns:
        {"train": ["id000/walk_00", ...], "val_identity": [...], ..., "test_both": [...], "meta": {...}}:
        scene paths relative to ``out_dir`` per split; meta lists the validation, test and off-palette identities.
    """
    val, test = _counts(num_identities, num_val_identities, num_test_identities)
    if not 0.0 <= off_palette_fraction <= 1.0:
        raise ValueError(f"off_palette_fraction must be in [0, 1]; got {off_palette_fraction}.")
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

    def split_name(i: int, motion: str) -> str:
        return split_of(i, motion, num_identities, val, test)

    def palette(i: int) -> str:
        return "held_out" if off_palette(i, num_identities, val, test, off_palette_fraction) else "train"

    jobs = [
        (i, m, k)
        for i in range(num_identities)
        for m in motions
        for k in range(sequences_per_motion)
        if split_name(i, m) in wanted
    ]
    result: dict = {name: [] for name in SPLITS}
    identities = {i: Identity.random(identity_seed(seed, i), palette(i)) for i in sorted({i for i, _, _ in jobs})}
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
        result[split_name(i, motion)].append(scene)
    names = {role: [f"id{i:03d}" for i in range(num_identities) if identity_role(i, num_identities, val, test) == role]
             for role in ("val", "test")}
    result["meta"] = {
        "num_identities": num_identities,
        "val_identities": names["val"],
        "test_identities": names["test"],
        "held_out_identities": names["val"] + names["test"],  # never trained on
        "off_palette_identities": [f"id{i:03d}" for i in range(num_identities) if palette(i) == "held_out"],
        "off_palette_fraction": off_palette_fraction,
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
