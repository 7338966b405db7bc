"""One offline clip, as the app's Upload tab runs it: reference + driving video (or pose images) -> MP4.

:func:`render_clip` prepares the reference (square crop around the person, black outside the
photo), turns the driving input into pose maps, renders them with the pipeline and writes an MP4 of
``reference | pose | result``. Progress goes to a callback ``progress(fraction, desc=...)`` (a
``gr.Progress`` works as is). Bad inputs raise ``ValueError`` with a message meant for the user;
the inputs themselves are never modified or deleted.
"""

from __future__ import annotations

import collections
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from turbonext.data.video_io import VIDEO_EXTENSIONS, save_gif, write_video
from turbonext.jobs.driving_inputs import (
    IMAGE_EXTENSIONS,
    PEOPLE,
    pad_pose_square,
    poses_from_folder,
    poses_from_video,
    reset_tracking,
)
from turbonext.jobs.options import StyleLora, applied_options
from turbonext.jobs.reference import (
    PreparedReference,
    main_person,
    native_size,
    pose_map_in_crop,
    pose_style_of,
    prepare_reference,
    reference_pose_for,
)
from turbonext.jobs.uploads import ACCEPTED_IMAGES
from turbonext.utils.images import side_by_side


Progress = Callable[..., object]
MAX_FRAMES_LIMIT = 600
#: Frames per second of the written MP4 and GIF (and the rate a driving video is sampled at) unless chosen.
DEFAULT_FPS = 24.0


@dataclass
class ClipResult:
    """``video``: the MP4 (H.264, reference | pose | result); ``pose_preview``: a strip of a few pose maps;
    ``notices``: things the user should know (e.g. a centre crop was used); ``seconds``: wall time; ``gif``: the
    same clip as a GIF (when asked for); ``made_reference``: the person made from the description (uint8 RGB),
    None when a photo was given; ``fps``: the rate both play at."""

    video: Path
    pose_preview: np.ndarray
    num_frames: int
    seconds: float
    notices: list[str] = field(default_factory=list)
    gif: Path | None = None
    made_reference: np.ndarray | None = None
    fps: float = DEFAULT_FPS


def _report(progress: Progress | None, fraction: float, desc: str) -> None:
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), desc=desc)


def load_poses(driving, size: int, max_frames: int, detector, fps: float, style: str = "turbonext",
               notices: list[str] | None = None, people: str = "main") -> list[Image.Image]:
    """Driving input -> pose maps (size x size): a video file (its poses drawn in ``style``; frames without a
    person hold the last pose, see :func:`~turbonext.jobs.driving_inputs.poses_from_video`; ``people``: the main
    person or everyone found), a folder of pose images, or a list of pose images (PIL or uint8 RGB arrays).
    ``notices`` (a list) receives what the user should know about the input (frames held, the video capped at
    ``max_frames``, several people)."""
    if driving is None:
        raise ValueError("no driving input: upload a video of a person moving (MP4, MOV, WebM...) or give pose images.")
    if isinstance(driving, (str, Path)):
        path = Path(driving)
        if path.is_dir():
            return poses_from_folder(path, size, max_frames=max_frames)
        if not path.is_file():
            raise ValueError(f"driving input {str(path)!r} does not exist.")
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise ValueError(f"driving input {path.name!r} is not a video; accepted: {', '.join(VIDEO_EXTENSIONS)} "
                             f"(or a folder of pose images).")
        if detector is None:
            raise ValueError("a pose detector is needed to read poses from a video; install one with "
                             "pip install 'turbonext[pose]'.")
        return poses_from_video(path, size, detector=detector, fps=fps, max_frames=max_frames, progress=False,
                                style=style, notices=notices, people=people)
    if isinstance(driving, Sequence) and len(driving) > 0:
        if len(driving) > max_frames and notices is not None:
            notices.append(f"Only the first {max_frames} of {len(driving)} pose images were used (the 'Max frames' setting).")
        out = []
        for i, item in enumerate(list(driving)[:max_frames]):
            if isinstance(item, np.ndarray):
                item = Image.fromarray(item)
            if not isinstance(item, Image.Image):
                raise ValueError(f"pose image {i} is a {type(item).__name__}; accepted: PIL images or uint8 RGB arrays.")
            out.append(pad_pose_square(np.asarray(item.convert("RGB")), size))  # padded, never stretched
        return out
    raise ValueError(f"driving input of type {type(driving).__name__} is not supported; accepted: a video path, a folder "
                     f"of pose images ({', '.join(IMAGE_EXTENSIONS)}) or a list of pose images.")


def pose_strip(poses: list[Image.Image], count: int = 6, height: int = 128) -> np.ndarray:
    """``count`` evenly spaced pose maps side by side (for a preview)."""
    picks = np.linspace(0, len(poses) - 1, min(count, len(poses))).round().astype(int)
    tiles = [np.asarray(poses[i].convert("RGB").resize((height, height), Image.BILINEAR)) for i in picks]
    return np.concatenate(tiles, axis=1)


KEPT_CLIP_FOLDERS = 8  # temporary clip folders kept per process (the app's users download theirs before this fills)
_clip_folders: collections.deque = collections.deque()
_clip_folders_lock = threading.Lock()


def _new_clip_folder() -> Path:
    """A new temporary folder for one clip; the oldest of this process's folders beyond
    :data:`KEPT_CLIP_FOLDERS` are removed, so a long-running app does not fill its disk (Gradio serves its own
    copy of each result)."""
    folder = Path(tempfile.mkdtemp(prefix="turbonext-clip-"))
    with _clip_folders_lock:
        _clip_folders.append(folder)
        while len(_clip_folders) > KEPT_CLIP_FOLDERS:
            shutil.rmtree(_clip_folders.popleft(), ignore_errors=True)
    return folder


def render_clip(pipe, reference, driving, detector=None, num_inference_steps: int = 4, max_frames: int = 48,
                fps: float = DEFAULT_FPS, seed: int = 0, size: int | None = None, out_dir: str | Path | None = None,
                progress: Progress | None = None, require_person: bool = False, description: str | None = None,
                mode: str | None = None, style_loras: Sequence[StyleLora] = (), people: str = "main",
                gif: bool = False, start_from_made_pose: bool = False) -> ClipResult:
    """Render the person of ``reference`` in the poses of ``driving``; write ``reference | pose | result``.

    Args:
        pipe: a :class:`~turbonext.TurboNextPipeline`.
        reference: the person: an image path, a PIL image or a uint8 RGB array; or None with a ``description``.
        driving: a video path (frames without a person hold the last pose; a notice says how many), a folder
            of pose images or a list of pose images (e.g. :func:`~turbonext.jobs.driving_inputs.builtin_motion_poses`).
        detector: a pose detector (needed for videos and to crop the reference around the person).
        num_inference_steps: 1..50 denoising steps (4 with LCM-LoRA).
        max_frames: 1..600, frames taken from the start of the driving input.
        fps: the rate the video is sampled at and the MP4 (and GIF) play at; 24 by default.
        out_dir: where the MP4 goes (default: a new temporary folder).
        progress: called as ``progress(fraction, desc=...)``.
        require_person: raise if no person is found in the reference (else a centre crop + notice).
        description: without a ``reference``, the person is made from this text first (text-conditioned models,
            :meth:`~turbonext.TurboNextPipeline.generate_reference`, deterministic in ``seed``); it is returned as
            ``made_reference``. Ignored, with a notice, when a reference is given.
        mode: "fast" or "hq" for this render only (None: the pipeline's own; see :mod:`turbonext.jobs.options`).
        style_loras: :class:`~turbonext.jobs.options.StyleLora` s stacked for this render only.
        people: "main" (the largest person of a driving video, followed) or "all" (everyone found).
        gif: also write the clip as a GIF beside the MP4.
        start_from_made_pose: with a person made from the ``description``, the pose detected in the made image
            (drawn in the model's pose style, at the clip's size) is put before the driving poses, so the motion
            starts from the made person (one more frame). No person found in it, or no detector: a notice, and
            the clip without it. Ignored, with a notice, when a reference photo is given.

    The mode and style LoRAs are on the shared pipeline only while this render holds its lock (other users' renders
    and live streams never see them); a text-made person is made under them too.
    """
    start = time.perf_counter()
    if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= 50:
        raise ValueError(f"steps must be an integer from 1 to 50 (4 is the usual choice); got {num_inference_steps!r}.")
    if not isinstance(max_frames, int) or not 1 <= max_frames <= MAX_FRAMES_LIMIT:
        raise ValueError(f"max frames must be an integer from 1 to {MAX_FRAMES_LIMIT}; got {max_frames!r}.")
    if not fps > 0 or not fps <= 120:
        raise ValueError(f"fps must be more than 0 and at most 120; got {fps}.")
    if people not in PEOPLE:
        raise ValueError(f"people must be one of {', '.join(PEOPLE)}; got {people!r}.")
    description = " ".join((description or "").split())
    if reference is None and not description:
        raise ValueError(f"No reference photo yet: upload {ACCEPTED_IMAGES} of one person, or describe a person.")
    size = int(size or native_size(pipe))
    notices: list[str] = []

    _report(progress, 0.0, "preparing the reference")
    style = pose_style_of(pipe)  # how this model's pose maps are drawn (a clear error for face-landmark models)
    prepared = reference_pose = None
    if reference is not None:
        reset_tracking(detector)  # a tracking detector must not carry an earlier person into this photo
        prepared = prepare_reference(reference, detector, size, require_person=require_person, pose_style=style)
        reference_pose = reference_pose_for(pipe, prepared)  # None unless the model reads it
        if prepared.notice:
            notices.append(prepared.notice)
        if description:
            notices.append("The description was not used: a reference photo was given (remove the photo to make the "
                           "person from the description).")
        if start_from_made_pose:
            notices.append("'Start the motion from the made person's pose' was not used: a reference photo was given "
                           "(it applies to a person made from a description).")
    _report(progress, 0.05, "reading poses")
    poses = load_poses(driving, size, max_frames, detector, fps, style=style, notices=notices, people=people)
    if not poses:
        raise ValueError("the driving input gave no frames.")

    total = num_inference_steps

    def on_step(_pipe, step: int, _t, kwargs: dict) -> dict:
        _report(progress, 0.2 + 0.75 * (step + 1) / total, f"denoising step {step + 1}/{total}")
        return kwargs

    device = pipe._execution_device
    made = None
    with applied_options(pipe, mode, style_loras):  # holds the pipeline's lock: one user's render at a time
        if prepared is None:
            _report(progress, 0.1, "making the person from the description")
            made = _make_person(pipe, description, size, seed)
            prepared, reference_pose = _made_reference(pipe, made, detector, size, style)
            if start_from_made_pose:
                first, notice = made_start_pose(prepared, detector, size, style)
                if first is not None:
                    poses = [first] + poses
                else:
                    notices.append(notice)
        _report(progress, 0.2, f"rendering {len(poses)} frames")
        generator = torch.Generator(device).manual_seed(seed)
        frames = pipe(reference_image=prepared.image, pose_images=poses, num_inference_steps=num_inference_steps,
                      generator=generator, callback_on_step_end=on_step, reference_pose=reference_pose,
                      max_frames=len(poses)).frames[0]
    _report(progress, 0.96, "writing the video")
    folder = Path(out_dir) if out_dir is not None else _new_clip_folder()
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"turbonext_{time.strftime('%Y%m%d-%H%M%S')}_{seed}.mp4"
    panels = side_by_side([Image.fromarray(prepared.image)], poses, frames)
    write_video(video, panels, fps=fps)
    gif_path = None
    if gif:
        gif_path = video.with_suffix(".gif")
        save_gif(panels, gif_path, fps=fps)
    _report(progress, 1.0, "done")
    return ClipResult(video, pose_strip(poses), len(frames), time.perf_counter() - start, notices, gif_path, made, fps)


def _made_reference(pipe, image: np.ndarray, detector, size: int, style: str):
    """The text-made person as the model's reference: used whole (it is made at the model's size and framing);
    a model that reads the reference pose gets the pose detected in it (then the crop around that person)."""
    if not getattr(pipe, "reads_reference_pose", False):
        return PreparedReference(image, False, method="whole", crop=(0.0, 0.0, float(size)), source_size=(size, size)), None
    reset_tracking(detector)
    prepared = prepare_reference(image, detector, size, require_person=False, pose_style=style)
    return prepared, reference_pose_for(pipe, prepared)


def made_start_pose(prepared: PreparedReference, detector, size: int, style: str = "turbonext"
                    ) -> tuple[Image.Image | None, str | None]:
    """The pose of the person in a made reference, as a first driving frame: ``(pose map, None)``, the map drawn in
    ``style`` at ``size`` x ``size`` in the reference's own frame (as the model sees it, like driving poses are drawn),
    or ``(None, notice)`` when there is no detector or no person was found (a sentence for the user). Never raises for
    a detector that fails: that is a notice too."""
    skipped = "the motion starts with the driving poses instead."
    if prepared.pose_map is not None:  # already detected (a model that reads the reference pose)
        return Image.fromarray(prepared.pose_map), None
    if detector is None:
        return None, f"The made person's pose could not be read (no pose detector is available); {skipped}"
    reset_tracking(detector)
    try:
        person = main_person(detector.detect(prepared.image))
    except (RuntimeError, ValueError, OSError) as err:
        return None, f"The made person's pose could not be read ({' '.join(str(err).split())[:200]}); {skipped}"
    if person is None:
        return None, f"No person was found in the made image, so its pose could not be the first frame; {skipped}"
    side = float(prepared.image.shape[0])
    return Image.fromarray(pose_map_in_crop(person, (0.0, 0.0, side), size, style)), None


def _make_person(pipe, description: str, size: int, seed: int) -> np.ndarray:
    """The person described, made by the pipeline (uint8 RGB, size x size), deterministic in ``seed``."""
    if getattr(pipe, "image_conditioned", False):
        raise ValueError("This model cannot make a person from a description: it reads a reference photo only (it "
                         f"has no text encoder). Upload {ACCEPTED_IMAGES} of one person instead.")
    generator = torch.Generator(pipe._execution_device).manual_seed(seed)
    return np.asarray(pipe.generate_reference(description, size, size, generator=generator).convert("RGB"))
