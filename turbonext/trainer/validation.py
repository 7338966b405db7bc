"""Validation during training: render one clip with the real pipeline, write it next to the ground truth.

Each row of the written video is ``[reference | pose | generated | ground truth]``; the clip is saved
as MP4 (imageio-ffmpeg) and GIF under ``<output_dir>/validation/step-000500.{mp4,gif}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from turbonext.data.video_io import save_gif, write_video
from turbonext.evaluation import metrics
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.trainer.dataset import load_image, scan_scenes
from turbonext.utils.images import side_by_side


logger = logging.getLogger(__name__)


@dataclass
class ValidationClip:
    """A fixed clip to render at every validation: PIL images at the training resolution."""

    name: str
    reference: Image.Image
    poses: list[Image.Image]
    frames: list[Image.Image]
    reference_pose: Image.Image | None = None  # the reference's pose map (for models that read it)


def _pil(path: Path, size: int) -> Image.Image:
    array = (load_image(path, size, Image.Resampling.BICUBIC).permute(1, 2, 0).numpy() * 255).round()
    return Image.fromarray(array.astype(np.uint8))


def pick_validation_clip(dataset_dir: str | Path, split: str | None, size: int, num_frames: int) -> ValidationClip:
    """The first scene of ``split``; its reference is the first frame of another scene of the same video
    (or, when the video has one scene, its own first frame, and the clip starts after it)."""
    scenes = scan_scenes(dataset_dir, split)
    scene = scenes[0]
    others = [s for s in scan_scenes(dataset_dir) if s.video == scene.video and s.name != scene.name]
    if others:
        ref_path, ref_pose_path, start = others[0].images[0], others[0].poses[0], 0
    else:
        ref_path, ref_pose_path, start = scene.images[0], scene.poses[0], min(1, len(scene.images) - 1)
    idx = list(range(start, min(start + num_frames, len(scene.images))))
    return ValidationClip(
        name=scene.name, reference=_pil(ref_path, size), reference_pose=_pil(ref_pose_path, size),
        poses=[_pil(scene.poses[k], size) for k in idx], frames=[_pil(scene.images[k], size) for k in idx],
    )


@torch.no_grad()
def render_validation(pipe: TurboNextPipeline, clip: ValidationClip, num_inference_steps: int, seed: int) -> list[Image.Image]:
    """Run the pipeline (its own scheduler, no LCM) on the clip; the reference cache is rebuilt and dropped."""
    pipe.clear_reference()  # weights changed since the last call: never reuse a cache
    try:
        out = pipe(reference_image=clip.reference, pose_images=clip.poses, num_inference_steps=num_inference_steps,
                   generator=torch.Generator().manual_seed(seed), output_type="pil",
                   reference_pose=clip.reference_pose if pipe.reads_reference_pose else None)
    finally:
        pipe.clear_reference()
    return list(out.frames[0])


def run_validation(pipe: TurboNextPipeline, clip: ValidationClip, out_dir: str | Path, step: int,
                   num_inference_steps: int, seed: int, fps: int) -> dict[str, float]:
    """Render, write ``out_dir/step-NNNNNN.{mp4,gif}`` and return mean PSNR / silhouette IoU vs ground truth."""
    generated = render_validation(pipe, clip, num_inference_steps, seed)
    frames = side_by_side([clip.reference], clip.poses, generated, clip.frames)  # reference | pose | generated | truth
    stem = Path(out_dir) / f"step-{step:06d}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_video(stem.with_suffix(".mp4"), frames, fps=fps)
    save_gif(frames, stem.with_suffix(".gif"), fps=fps)
    logger.info("validation clip %s written to %s", clip.name, stem.with_suffix(".mp4"))
    return {
        "val/psnr": float(np.mean([metrics.psnr(g, t) for g, t in zip(generated, clip.frames)])),
        "val/iou": float(np.mean([metrics.silhouette_iou(g, t) for g, t in zip(generated, clip.frames)])),
    }
