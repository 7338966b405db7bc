"""``turbonext generate``: render the person of a reference image in the poses of a driving video.

With no arguments it runs the embedded demo model on a built-in synthetic sequence (no network).
Writes an MP4 and a GIF side by side, reference | pose | result, plus a 4th panel, the ground truth, only
for the built-in synthetic sequence with its own reference (a user's photo has none), and the result
frames as PNGs. A reference photo is cropped square around its person (never stretched) and the
command says how, e.g. "reference 640x480 cropped to the person (...) and resized to 256x256".
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from turbonext.data.video_io import save_gif, write_video
from turbonext.jobs.clip import DEFAULT_FPS, made_start_pose
from turbonext.jobs.driving_inputs import poses_from_folder, poses_from_video, synthetic_demo_inputs
from turbonext.jobs.reference import (
    PreparedReference,
    native_size,
    pose_style_of,
    prepare_reference,
    reference_pose_for,
)
from turbonext.loaders.hub import DEMO_MODEL_NAME
from turbonext.pipelines.context_windows import LONG_VIDEO_MODES
from turbonext.pipelines.inference import load_for_inference
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.pose.detectors import get_detector
from turbonext.utils.images import load_rgb, side_by_side


def pipeline_default(name: str):
    """The default of ``TurboNextPipeline.__call__``'s argument ``name`` (the command's defaults follow the library's)."""
    return inspect.signature(TurboNextPipeline.__call__).parameters[name].default


LONG_VIDEO_HELP = {
    "blend": "overlapping windows cover the whole clip at every step, averaged where they overlap (one piece; memory "
             "grows with the length)",
    "chain": "window after window, each new window next to the last finished frames as context (memory stays one "
             "window's at any length: for long clips)",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="turbonext generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEMO_MODEL_NAME,
                   help=f"a local pipeline folder, a Hub repo id, or {DEMO_MODEL_NAME!r} (embedded, default)")
    p.add_argument("--reference", help="the person: an image file (default: a synthetic held-out identity)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--driving", help="a driving video (poses are detected; needs mediapipe or ultralytics)")
    src.add_argument("--poses", help="a folder of rendered pose images")
    p.add_argument("--out", default="outputs/turbonext.mp4", help="output MP4 (a GIF is written beside it)")
    p.add_argument("--size", type=int, default=None, help="output size (default: the model's native size)")
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps (default: the model's own: 4 for turbonext's, e.g. 30 for Moore-AnimateAnyone)")
    p.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance (default: the model's)")
    p.add_argument("--prompt", default=None,
                   help="without --reference: make the person from this text first (text-conditioned models)")
    p.add_argument("--start-from-made-pose", action="store_true",
                   help="with --prompt: detect the made person's pose and put it before the driving poses, so the "
                        "motion starts from it (one more frame; needs a pose detector, else a note and the usual clip)")
    p.add_argument("--mode", default=None, choices=("fast", "hq"),
                   help="fast (LCM) or hq (LCM-LoRA off, DPM-Solver++, CFG): models with a switchable LCM-LoRA")
    p.add_argument("--style-lora", action="append", default=[], metavar="PATH[:WEIGHT]",
                   help="stack a style LoRA (a file, folder or Hub repo; weight 0.8 by default); up to 3")
    p.add_argument("--max-frames", type=int, default=48,
                   help="the longest clip: frames taken from the start of the driving video or pose folder (default "
                        "48; the built-in synthetic sequence has at most 32). Any length is rendered; clips longer "
                        f"than one window ({pipeline_default('window_size')} frames) follow --long-video")
    p.add_argument("--long-video", default=None, choices=LONG_VIDEO_MODES,
                   help="how a clip longer than one window is rendered: "
                        + "; ".join(f"{mode}: {LONG_VIDEO_HELP.get(mode, mode)}" for mode in LONG_VIDEO_MODES)
                        + f" (default: the pipeline's, {pipeline_default('long_video')}; not used with --stream)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS,
                   help=f"frames per second of the MP4 (H.264) and the GIF, and the rate a --driving video is sampled "
                        f"at (default {DEFAULT_FPS:g})")
    p.add_argument("--detector", default="auto", choices=["auto", "yolo", "mediapipe"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stream", action="store_true", help="render with the real-time StreamSession")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    return p


def cli_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not 0 < args.fps <= 120:
            raise ValueError(f"--fps must be more than 0 and at most 120; got {args.fps:g}.")
        if args.max_frames < 1:
            raise ValueError(f"--max-frames must be at least 1; got {args.max_frames}.")
        if args.start_from_made_pose and not args.prompt:
            raise ValueError("--start-from-made-pose needs --prompt: it starts the motion from the pose of the person "
                             "made from the text.")
        check_output_paths(args.out)  # before the (long) render, not after it
        return generate(args)
    except (ValueError, FileNotFoundError, ImportError) as err:  # bad input, missing weights or backend
        print(f"turbonext generate: {err}", file=sys.stderr)
        return 2


def check_output_paths(out: str) -> None:
    """Refuse (``ValueError``) an ``--out`` that is not an .mp4 path, or whose MP4, GIF or frames folder would be
    written through a symbolic link (onto whatever it points to) or onto something of another kind (a folder
    where the MP4 goes, a file where the frames folder goes)."""
    path = Path(out)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"--out must be an .mp4 file path, got {out!r} (a GIF and a folder of PNG frames "
                         "are written beside it).")
    frames_dir = path.with_suffix("")
    for target in (path, path.with_suffix(".gif"), frames_dir):
        if target.is_symlink():
            raise ValueError(f"--out {out!r}: {target} is a symbolic link (to {target.resolve()}); refusing to write "
                             "through it. Choose another --out or remove the link.")
    for target in (path, path.with_suffix(".gif")):
        if target.exists() and not target.is_file():
            raise ValueError(f"--out {out!r}: {target} exists and is not a file.")
    if frames_dir.exists() and not frames_dir.is_dir():
        raise ValueError(f"--out {out!r}: the frames folder {frames_dir} exists and is not a folder.")
    links = sorted(p.name for p in frames_dir.glob("*.png") if p.is_symlink()) if frames_dir.is_dir() else []
    if links:
        raise ValueError(f"--out {out!r}: the frames folder {frames_dir} holds symbolic links ({', '.join(links[:3])}); "
                         "refusing to write through them. Choose another --out or remove them.")


def prepare_user_reference(path: str, detector_name: str, size: int, needs_pose: bool,
                           pose_style: str = "turbonext") -> PreparedReference:
    """A user's reference photo, cropped square around its person (see :func:`prepare_reference`).

    A model that reads the reference pose needs a detected person (an ImportError without a detector, a
    ValueError without a person); for the others a missing detector or person falls back to the figure
    against a plain background, the whole square photo, or a centre square crop.
    """
    rgb = load_rgb(path)  # a bad file is reported before a detector is loaded
    try:
        detector = get_detector(detector_name)
    except ImportError:
        if needs_pose:
            raise
        detector = None  # prepare_reference's notice says that no detector was available
    try:
        return prepare_reference(rgb, detector, size, require_person=needs_pose, pose_style=pose_style)
    finally:
        if detector is not None:
            detector.close()


def start_pose_of_made(reference, detector_name: str, size: int, style: str) -> list:
    """``--start-from-made-pose``: ``[the made person's pose map]`` (drawn in ``style`` at ``size``), or ``[]`` with a
    note printed when no detector is installed or no person is found in the made image."""
    import numpy as np

    try:
        detector = get_detector(detector_name)
    except ImportError as err:
        detector = None
        print(f"Note: no pose detector ({' '.join(str(err).split())[:200]}).")
    try:
        made = PreparedReference(np.asarray(reference.convert("RGB")), False, method="whole")
        first, notice = made_start_pose(made, detector, size, style)
    finally:
        if detector is not None:
            detector.close()
    if first is None:
        print(f"Note: {notice}")
        return []
    print("The motion starts from the made person's pose (one more frame).")
    return [first]


def panels(reference, poses: list, frames: list, truth: list | None = None) -> tuple[list[list], str]:
    """The side-by-side columns and their header: reference | pose | result, plus "ground truth" only when
    there is one (the built-in synthetic inputs)."""
    columns = {"reference": [reference], "pose": list(poses), "result": list(frames)}
    if truth is not None:
        columns["ground truth"] = list(truth)
    return list(columns.values()), " | ".join(columns)


def _style_lora_spec(spec: str) -> tuple[str, float]:
    """"PATH[:WEIGHT]" -> (path, weight), weight 0.8 when not given."""
    head, sep, tail = spec.rpartition(":")
    try:
        return (head, float(tail)) if sep and head else (spec, 0.8)
    except ValueError:
        return spec, 0.8


def generate(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    pipe = load_for_inference(args.model, args.device)
    if args.model == DEMO_MODEL_NAME:
        print(f"Using the embedded demo model ({DEMO_MODEL_NAME}): trained on synthetic figures only.")
    size = args.size or native_size(pipe)
    style = pose_style_of(pipe)  # the model's pose drawing (a clear error for models poses cannot drive)
    truth = reference_pose = None
    if args.driving:
        poses = poses_from_video(args.driving, size, detector=args.detector, fps=args.fps, max_frames=args.max_frames,
                                 style=style)
    elif args.poses:
        poses = poses_from_folder(args.poses, size, max_frames=args.max_frames)
    else:
        demo = synthetic_demo_inputs(size=size, num_frames=min(args.max_frames, 32), seed=args.seed, pose_style=style)
        poses, truth = demo.poses, demo.truth
    for spec in args.style_lora:
        path, weight = _style_lora_spec(spec)
        pipe.load_style_lora(path, weight=weight)
        print(f"Style LoRA {path} at weight {weight}.")
    if args.prompt and not args.reference:
        reference = pipe.generate_reference(args.prompt, size, size, generator=torch.Generator(pipe.device).manual_seed(
            args.seed))
        reference_pose, truth = None, None
        print(f"Made the person from the prompt {args.prompt!r} (saved beside the video as *_reference.png).")
        if args.start_from_made_pose:
            poses = [*start_pose_of_made(reference, args.detector, size, style), *poses]
    elif args.reference:
        prepared = prepare_user_reference(args.reference, args.detector, size, pipe.reads_reference_pose, style)
        print(f"{prepared.summary}.")
        if prepared.notice:
            print(f"Note: {prepared.notice}")
        if args.start_from_made_pose:
            print("Note: --start-from-made-pose was not used: --reference was given (the prompt makes no person).")
        reference, reference_pose = Image.fromarray(prepared.image), reference_pose_for(pipe, prepared)
        truth = None  # the synthetic sequence's frames show another person: no ground truth for a user's photo
    elif not (args.driving or args.poses):
        reference, reference_pose = demo.reference, demo.reference_pose
    else:
        raise ValueError("--reference is required with --driving/--poses.")
    if not pipe.reads_reference_pose:
        reference_pose = None

    generator = torch.Generator(pipe.device).manual_seed(args.seed)
    if args.stream and args.long_video:
        print("Note: --long-video is not used with --stream (a stream renders frame after frame).")
    if args.stream:
        session = pipe.stream(reference_image=reference, num_inference_steps=args.steps or 4, generator=generator,
                              height=size, width=size, reference_pose=reference_pose,
                              guidance_scale=args.guidance_scale or 1.0)
        frames = [f for p in poses for f in session.step(p)] + session.flush()
    else:
        frames = pipe(reference_image=reference, pose_images=poses, num_inference_steps=args.steps,
                      guidance_scale=args.guidance_scale, generator=generator, reference_pose=reference_pose,
                      mode=args.mode, max_frames=max(args.max_frames, len(poses)),
                      **({"long_video": args.long_video} if args.long_video else {})).frames[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.prompt and not args.reference:
        reference.save(out.with_name(out.stem + "_reference.png"))
    columns, header = panels(reference, poses, frames, truth)
    frames_dir = out.with_suffix("")
    frames_dir.mkdir(exist_ok=True)
    for i, f in enumerate(frames):  # the rendered frames first: a failing video encoder cannot lose them
        f.save(frames_dir / f"{i + 1:05d}.png")
    video = side_by_side(*columns)
    write_video(out, video, fps=args.fps)
    save_gif(video, out.with_suffix(".gif"), fps=args.fps)
    print(f"Wrote {out} and {out.with_suffix('.gif')} ({len(frames)} frames; {header}) and frames in {frames_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
