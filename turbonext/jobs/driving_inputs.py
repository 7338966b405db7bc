"""Driving inputs -> pose maps: a video (pose detection, one fixed square crop around the person),
a folder of pose images, or a built-in synthetic sequence (offline demo)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from turbonext.data.crop import crop_square, keypoints_to_crop, square_crop_box
from turbonext.data.video_io import iter_frames
from turbonext.pose.detectors import get_detector
from turbonext.pose.render import render_pose
from turbonext.pose.tracking import MainPersonTracker
from turbonext.synthetic.dataset import identity_seed, make_sequence
from turbonext.synthetic.figure import Identity


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def poses_from_folder(folder: str | Path, size: int, max_frames: int | None = None) -> list[Image.Image]:
    """Rendered pose images in ``folder`` (sorted by name), resized to ``size`` x ``size``.

    A non-square pose image is padded black to a square (centred) first, never stretched.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"pose folder {folder} does not exist.")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:max_frames]
    if not paths:
        raise ValueError(f"no pose images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}.")
    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                rgb = np.asarray(im.convert("RGB"))
        except OSError as err:
            raise ValueError(f"cannot read pose image {p}: {err}") from err
        out.append(pad_pose_square(rgb, size))
    return out


def pad_pose_square(rgb: np.ndarray, size: int) -> Image.Image:
    """A pose map (H, W, 3) padded black to a centred square and resized to ``size`` (never stretched)."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    return Image.fromarray(crop_square(rgb, ((w - side) / 2.0, (h - side) / 2.0, float(side)), size))


def poses_from_video(video: str | Path, size: int, detector="auto", fps: float | None = None,
                     max_frames: int | None = None, margin: float = 0.2, progress: bool = True,
                     style: str = "turbonext") -> list[Image.Image]:
    """Detect the main person in every frame and render their pose in one fixed square crop, drawn in ``style``
    (the model's :func:`~turbonext.jobs.reference.pose_style_of`).

    One crop for the whole clip (around the union of the person's boxes) keeps the camera still, and
    matches the training data's framing (square crop around the person, black outside the frame).
    Frames with no person get an empty (black) pose map.
    """
    from tqdm.auto import tqdm

    info, frames = iter_frames(video, fps=fps)
    det = get_detector(detector) if isinstance(detector, str) else detector
    tracker = MainPersonTracker()
    people = []
    for i, _, frame in tqdm(frames, desc="detecting poses", disable=not progress):
        if max_frames is not None and i >= max_frames:
            break
        people.append(tracker(det.detect(frame)))
    if isinstance(detector, str):
        det.close()
    boxes = [p.box() for p in people if p is not None and p.box() is not None]
    if not boxes:
        raise ValueError(f"no person found in any frame of {video}; the driving video needs a visible person.")
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    crop = square_crop_box(union, margin=margin)
    black = Image.new("RGB", (size, size))
    return [black.copy() if p is None else render_pose([keypoints_to_crop(p, crop, size)], size=(size, size), style=style)
            for p in people]


DEMO_DATASET_IDENTITIES = 120  # the demo model trained on `turbonext synthetic --identities 120` (the last 2 held out)


class DemoInputs(NamedTuple):
    """Inputs for the demo model: ``reference`` image and its ``reference_pose`` map, the driving
    ``poses`` and the ground-truth ``truth`` frames (all PIL)."""

    reference: Image.Image
    poses: list[Image.Image]
    truth: list[Image.Image]
    reference_pose: Image.Image


def synthetic_demo_inputs(size: int = 256, num_frames: int = 32, identity_index: int = DEMO_DATASET_IDENTITIES - 1,
                          motion: str = "dance", seed: int = 0, palette: str = "train",
                          pose_style: str = "turbonext") -> DemoInputs:
    """A synthetic identity held out from the demo model's training (reference from another motion)
    and a driving pose sequence, with the ground truth. ``palette="held_out"`` dresses the identity in
    colours no training identity wears (:meth:`~turbonext.synthetic.Identity.random`). ``pose_style``: how the
    pose maps are drawn (the model's; converted models read DWPose/OpenPose-style maps).
    """
    ident = Identity.random(identity_seed(seed, identity_index), palette=palette)
    ref_frames, ref_poses, ref_keypoints = make_sequence(ident, "wave", num_frames=1, size=size, seed=seed + 1)
    frames, poses, keypoints = make_sequence(ident, motion, num_frames=num_frames, size=size, seed=seed)
    if pose_style != "turbonext":
        ref_poses, poses = ([render_pose(kp[None], size=(size, size), style=pose_style) for kp in points]
                            for points in (ref_keypoints, keypoints))
    return DemoInputs(ref_frames[0], poses, frames, ref_poses[0])
