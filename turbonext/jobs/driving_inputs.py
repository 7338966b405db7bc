"""Driving inputs -> pose maps: a video (pose detection, one fixed square crop around the person; frames
without a person hold the last pose), a folder of pose images, or a built-in synthetic motion (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from turbonext.data.crop import crop_square, keypoints_to_crop, square_crop_box
from turbonext.data.video_io import iter_frames
from turbonext.jobs.uploads import ACCEPTED_VIDEOS
from turbonext.pose.backends import PoseDetector
from turbonext.pose.detectors import get_detector
from turbonext.pose.keypoints import Person
from turbonext.pose.render import render_pose
from turbonext.pose.tracking import MainPersonTracker
from turbonext.synthetic.dataset import identity_seed, make_sequence
from turbonext.synthetic.figure import Identity
from turbonext.synthetic.motion import MOTIONS
from turbonext.utils.images import load_rgb


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: Who in a driving video drives the clip: the main (largest, then followed) person, or everyone found.
PEOPLE = ("main", "all")


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
            rgb = load_rgb(p)  # the package's loader: pixel limits, damaged files, modes
        except ValueError as err:
            raise ValueError(f"cannot read pose image {p.name}: {err}") from err
        out.append(pad_pose_square(rgb, size))
    return out


def pad_pose_square(rgb: np.ndarray, size: int) -> Image.Image:
    """A pose map (H, W, 3) padded black to a centred square and resized to ``size`` (never stretched)."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    return Image.fromarray(crop_square(rgb, ((w - side) / 2.0, (h - side) / 2.0, float(side)), size))


def poses_from_video(video: str | Path, size: int, detector="auto", fps: float | None = None,
                     max_frames: int | None = None, margin: float = 0.2, progress: bool = True,
                     style: str = "turbonext", notices: list[str] | None = None, people: str = "main"
                     ) -> list[Image.Image]:
    """Detect the main person in every frame and render their pose in one fixed square crop, drawn in ``style``
    (the model's :func:`~turbonext.jobs.reference.pose_style_of`). ``people="all"`` renders everyone found in a
    frame into its pose map instead (one map, every skeleton: the model renders each of them as the reference
    person); with ``"main"`` (the default), a notice says when the video shows several people.

    One crop for the whole clip (around the union of the person's boxes) keeps the camera still, and
    matches the training data's framing (square crop around the person, black outside the frame).

    Frames where no person is found **hold the last pose** (frames before the person first appears take
    the first pose found), so the figure stands still instead of vanishing into black frames. Raises a
    ``ValueError`` (a sentence for the user, naming the file) when the video cannot be decoded, has no
    frames, or shows no person in any frame. ``notices`` (a list, if given) receives what the user should
    know: how many frames held a pose, that only the first ``max_frames`` were used, that the video ended
    early (damaged). A tracking detector is :meth:`~turbonext.pose.backends.PoseDetector.reset` first, so a
    person seen before (e.g. in the reference photo) is not carried into the video.
    """
    from tqdm.auto import tqdm

    notices = [] if notices is None else notices
    name = Path(video).name
    try:
        info, frames = iter_frames(video, fps=fps)
    except ValueError as err:
        reason = str(err).split(" as a video: ", 1)[-1]
        raise ValueError(f"The driving video {name!r} could not be decoded ({reason}). Upload {ACCEPTED_VIDEOS} "
                         f"of one person moving.") from err
    if people not in PEOPLE:
        raise ValueError(f"people must be one of {', '.join(PEOPLE)}; got {people!r}.")
    det = get_detector(detector) if isinstance(detector, str) else detector
    reset_tracking(det)
    tracker = MainPersonTracker()
    driving: list[list[Person]] = []  # per frame: the people who drive it (the main one, or everyone found)
    most = 0  # the most people found in one frame
    more_frames = False
    try:
        for i, _, frame in tqdm(frames, desc="detecting poses", disable=not progress):
            if max_frames is not None and i >= max_frames:
                more_frames = True
                break
            detected = [p for p in det.detect(frame) if p.box() is not None]
            most = max(most, len(detected))
            main = tracker(detected)
            driving.append(detected if people == "all" else [main] if main is not None else [])
    except (OSError, RuntimeError, ValueError) as err:  # the decoder failed part way (a damaged or cut-off file)
        if not driving:
            raise ValueError(f"The driving video {name!r} could not be decoded ({' '.join(str(err).split())[:200]}). "
                             f"Upload {ACCEPTED_VIDEOS} of one person moving.") from err
        notices.append(f"The driving video {name!r} could only be read up to frame {len(driving)} (the rest of the "
                       f"file seems damaged); those frames were used.")
    finally:
        if isinstance(detector, str):
            det.close()
    if not driving:
        raise ValueError(f"The driving video {name!r} has no frames. Upload a video of one person moving.")
    found = [i for i, frame_people in enumerate(driving) if frame_people]
    if not found:
        raise ValueError(f"No person was found in the driving video {name!r} ({len(driving)} frames checked). "
                         f"Use a video that shows one person, ideally head to toe and facing the camera.")
    if more_frames:
        rate = fps or info.fps
        length = f"{info.duration:.1f} s long" if info.duration else "longer"
        notices.append(f"The driving video is {length}; only its first {len(driving)} frames "
                       f"({len(driving) / rate:.1f} s at {rate:g} frames/s) were used: the 'Max frames' setting.")
    if len(found) < len(driving):
        notices.append(f"A person was found in {len(found)} of {len(driving)} frames of {name!r}; "
                       f"the other frames hold the last pose found.")
    if most > 1:
        notices.append(f"The driving video shows up to {most} people; " + (
            "everyone found drives the clip, each rendered as the reference person." if people == "all" else
            "only the largest one was followed (choose 'everyone' under People to drive the clip with all of them)."))
    boxes = [person.box() for i in found for person in driving[i]]
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    crop = square_crop_box(union, margin=margin)
    rendered = {i: render_pose([keypoints_to_crop(person, crop, size) for person in driving[i]], size=(size, size),
                               style=style) for i in found}
    out, last = [], rendered[found[0]]  # before the person first appears: their first pose
    for i in range(len(driving)):
        last = rendered.get(i, last)
        out.append(last.copy())
    return out


def reset_tracking(detector) -> None:
    """Forget the tracked person before a new scene: the detector's own state and, for a wrapper such as
    :class:`~turbonext.pose.smoothing.SmoothedPoseDetector`, the wrapped detector's."""
    for candidate in (detector, getattr(detector, "detector", None)):
        if isinstance(candidate, PoseDetector):
            candidate.reset()


#: The built-in driving motions (synthetic poses, no video or detector needed).
BUILTIN_MOTIONS: tuple[str, ...] = MOTIONS


def builtin_motion_poses(motion: str, size: int, num_frames: int = 48, style: str = "turbonext",
                         seed: int = 0) -> list[Image.Image]:
    """A built-in synthetic motion (one of :data:`BUILTIN_MOTIONS`) as ``num_frames`` pose maps (size x size),
    drawn in ``style``: a driving input for users without a video (the app's examples)."""
    if motion not in BUILTIN_MOTIONS:
        raise ValueError(f"unknown built-in motion {motion!r}; choose one of {', '.join(BUILTIN_MOTIONS)}.")
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer; got {num_frames!r}.")
    ident = Identity.random(identity_seed(seed, DEMO_DATASET_IDENTITIES - 1))
    _, poses, keypoints = make_sequence(ident, motion, num_frames=num_frames, size=size, seed=seed)
    if style != "turbonext":
        poses = [render_pose(kp[None], size=(size, size), style=style) for kp in keypoints]
    return poses


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
