"""Training samples from the ``dataset/<video_id>/<scene_id>/{images,poses}/00001.jpg`` layout.

One sample = a reference frame of the same person (another scene of the same video when there is
one, else a frame of the same scene far from the clip) + a clip of ``num_frames`` consecutive target
frames with their pose maps. ``num_frames=1`` is the image stage, 16 the video stage.
``same_scene_reference`` (a probability) takes the reference from the clip's own scene instead (at
least ``reference_min_distance`` frames away): a pose close to the target's, so that copying through
reference attention pays off early in training (a curriculum; other scenes teach large pose changes).

``color_augmentation`` (a probability) permutes the RGB channels of the reference and the target
frames with ONE random permutation per sample (pose maps untouched). A model that could otherwise
recognise a training person by body proportions and recall their clothes from memory must then read
the colours off the reference: the ReferenceNet path is the only place the right answer comes from.
``hue_augmentation`` (a probability) does the same with a continuous change: one random rotation of the
colours about the grey axis (:func:`rotate_hue`; black and white stay, every hue moves by the same angle)
shared by the reference and the clip. Six channel orders are few enough to memorise as six palettes; a
continuous hue is not.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LAYOUT = "<dataset>/<video_id>/<scene_id>/images/00001.jpg and <dataset>/<video_id>/<scene_id>/poses/00001.jpg"


@dataclass
class Scene:
    """One scene: frame paths and pose paths in the same order (matched by file name)."""

    video: str
    name: str  # "<video_id>/<scene_id>"
    images: list[Path]
    poses: list[Path]


def scan_scenes(root: str | Path, split: str | None = None) -> list[Scene]:
    """All scenes under ``root`` (or those of ``split`` in ``root/split.json``), sorted by name.

    Raises ``ValueError`` when the folder is missing or empty, a split is unknown, or a scene's
    images and poses do not match one to one.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder {root} does not exist. Expected the layout {LAYOUT}.")
    if split is not None:
        split_file = root / "split.json"
        if not split_file.is_file():
            raise ValueError(f"split={split!r} needs {split_file}, which does not exist (set split: null to use all scenes).")
        splits = json.loads(split_file.read_text())
        if split not in splits or not isinstance(splits[split], list):
            names = [k for k, v in splits.items() if isinstance(v, list)]
            raise ValueError(f"split {split!r} is not in {split_file}; it has {names}.")
        scene_dirs = [root / s for s in splits[split]]
    else:
        scene_dirs = sorted(p.parent for p in root.glob("*/*/images") if p.is_dir())
    scenes = []
    for scene_dir in scene_dirs:
        images = {p.stem: p for p in (scene_dir / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
        poses = {p.stem: p for p in (scene_dir / "poses").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
        if not images:
            raise ValueError(f"scene {scene_dir} has no images/*.jpg. Expected the layout {LAYOUT}.")
        if images.keys() != poses.keys():
            missing = sorted(images.keys() ^ poses.keys())[:5]
            raise ValueError(f"scene {scene_dir}: images/ and poses/ must hold the same file names; unmatched: {missing}.")
        names = sorted(images)
        rel = scene_dir.relative_to(root)
        scenes.append(Scene(video=rel.parts[0], name=rel.as_posix(), images=[images[n] for n in names],
                            poses=[poses[n] for n in names]))
    if not scenes:
        raise ValueError(f"no scenes found in {root}. Expected the layout {LAYOUT}.")
    return scenes


def load_image(path: Path, size: int, resample: Image.Resampling) -> torch.Tensor:
    """Read an RGB image, pad it black to a square (never stretch), resize -> (3, size, size) in [0, 1]."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    if w != h:
        side = max(w, h)
        square = Image.new("RGB", (side, side))
        square.paste(image, ((side - w) // 2, (side - h) // 2))
        image = square
    if image.size != (size, size):
        image = image.resize((size, size), resample)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def rotate_hue(images: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate RGB colours by ``angle`` radians about the grey axis (1, 1, 1): hue turns, grey levels stay.

    ``images``: (..., 3, H, W) in [0, 1]; the result is clamped to [0, 1]. Rodrigues' rotation matrix.
    """
    c, s, third = float(np.cos(angle)), float(np.sin(angle)), 1.0 / 3.0
    r = float(np.sqrt(third)) * s
    matrix = torch.tensor([[c + (1 - c) * third, (1 - c) * third - r, (1 - c) * third + r],
                           [(1 - c) * third + r, c + (1 - c) * third, (1 - c) * third - r],
                           [(1 - c) * third - r, (1 - c) * third + r, c + (1 - c) * third]], dtype=images.dtype)
    return torch.einsum("ij,...jhw->...ihw", matrix, images).clamp(0, 1)


def _choice(items: list):
    """A uniformly random element, drawn with torch's RNG."""
    return items[int(torch.randint(len(items), ()))]


class PoseVideoDataset(Dataset):
    """Samples ``{"reference": (3, H, W), "reference_pose": (3, H, W), "frames": (F, 3, H, W), "poses": (F, 3, H, W)}``
    in [0, 1].

    Every clip start of every scene long enough for ``num_frames`` (with ``frame_stride``) is one
    sample; the reference is drawn at random each time with torch's RNG (seeded by ``accelerate.utils.set_seed``
    and, per worker, by the DataLoader).
    """

    def __init__(self, root: str | Path, resolution: int = 512, num_frames: int = 1, frame_stride: int = 1,
                 split: str | None = None, reference_min_distance: int = 8, color_augmentation: float = 0.0,
                 same_scene_reference: float = 0.0, hue_augmentation: float = 0.0):
        for name, p in (("color_augmentation", color_augmentation), ("same_scene_reference", same_scene_reference),
                        ("hue_augmentation", hue_augmentation)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1]; got {p}.")
        self.same_scene_reference = same_scene_reference
        self.color_augmentation = color_augmentation
        self.hue_augmentation = hue_augmentation
        self.resolution = resolution
        self.num_frames = num_frames
        self.frame_stride = frame_stride
        self.reference_min_distance = reference_min_distance
        self.scenes = scan_scenes(root, split)
        span = (num_frames - 1) * frame_stride + 1  # frames one clip covers
        self.clips = [(i, start) for i, s in enumerate(self.scenes) for start in range(len(s.images) - span + 1)]
        if not self.clips:
            longest = max(len(s.images) for s in self.scenes)
            raise ValueError(f"no scene in {root} has the {span} frames a clip needs (num_frames={num_frames}, "
                             f"frame_stride={frame_stride}); the longest has {longest}.")
        short = sum(len(s.images) < span for s in self.scenes)
        if short:
            logger.warning("%d of %d scenes are shorter than a clip (%d frames) and are skipped.", short, len(self.scenes), span)
        self.by_video: dict[str, list[int]] = {}
        for i, s in enumerate(self.scenes):
            self.by_video.setdefault(s.video, []).append(i)

    def __len__(self) -> int:
        return len(self.clips)

    def reference_frame(self, scene_index: int, clip: list[int]) -> tuple[Path, Path]:
        """(image, pose map) of a frame of the same person: another scene of the same video (unless the
        ``same_scene_reference`` draw says otherwise), else a distant frame of this one."""
        others = [j for j in self.by_video[self.scenes[scene_index].video] if j != scene_index]
        if others and self.same_scene_reference > 0 and float(torch.rand(())) < self.same_scene_reference:
            others = []  # this time: a distant frame of the clip's own scene
        if others:
            scene = self.scenes[_choice(others)]
            k = _choice(list(range(len(scene.images))))
        else:
            scene = self.scenes[scene_index]
            far = [k for k in range(len(scene.images)) if min(abs(k - c) for c in clip) >= self.reference_min_distance]
            outside = [k for k in range(len(scene.images)) if k not in clip]
            k = _choice(far or outside or clip)
        return scene.images[k], scene.poses[k]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene_index, start = self.clips[index]
        scene = self.scenes[scene_index]
        clip = list(range(start, start + self.num_frames * self.frame_stride, self.frame_stride))
        size = self.resolution
        frames = torch.stack([load_image(scene.images[k], size, Image.Resampling.BICUBIC) for k in clip])  # (F, 3, H, W)
        poses = torch.stack([load_image(scene.poses[k], size, Image.Resampling.BILINEAR) for k in clip])  # (F, 3, H, W)
        ref_image, ref_pose = self.reference_frame(scene_index, clip)
        reference = load_image(ref_image, size, Image.Resampling.BICUBIC)  # (3, H, W)
        reference_pose = load_image(ref_pose, size, Image.Resampling.BILINEAR)  # (3, H, W)
        if self.color_augmentation > 0 and float(torch.rand(())) < self.color_augmentation:
            order = torch.randperm(3)  # the same channel order for the reference and the target
            frames, reference = frames[:, order], reference[order]
        if self.hue_augmentation > 0 and float(torch.rand(())) < self.hue_augmentation:
            angle = float(torch.rand(())) * 2 * np.pi  # the same rotation for the reference and the target
            frames, reference = rotate_hue(frames, angle), rotate_hue(reference, angle)
        return {"reference": reference, "reference_pose": reference_pose.clamp(0, 1), "frames": frames.clamp(0, 1),
                "poses": poses.clamp(0, 1)}
