"""Finding and reading videos (imageio-ffmpeg, a core dependency), with optional frame-rate resampling."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image


VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg reports about a video."""

    fps: float
    width: int
    height: int
    duration: float


def list_videos(videos_dir: str | Path) -> dict[str, Path]:
    """Videos directly in ``videos_dir`` (sorted), keyed by a unique, filesystem-safe video id."""
    folder = Path(videos_dir)
    if not folder.is_dir():
        raise ValueError(f"videos folder {folder} does not exist or is not a folder.")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    ids: dict[str, Path] = {}
    for path in paths:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._") or "video"
        video_id = base if base not in ids else f"{base}_{path.suffix.lower().lstrip('.')}"
        n = 2
        while video_id in ids:
            video_id, n = f"{base}_{n}", n + 1
        ids[video_id] = path
    return ids


# The largest video frame read (8K UHD): a larger one is refused from the header, before ffmpeg decodes it.
MAX_FRAME_PIXELS = 7680 * 4320


def _ffmpeg_reason(err: BaseException) -> str:
    """The informative part of an imageio-ffmpeg error: its first line and ffmpeg's last one (no banner)."""
    text = str(err)
    if "does not contain any stream" in text or ("Input #0" in text and "Video:" not in text):
        return "it has no video stream (an audio file?)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"


def iter_frames(path: str | Path, fps: float | None = None) -> tuple[VideoInfo, Iterator[tuple[int, float, np.ndarray]]]:
    """Open a video; return its info and an iterator of (sample index, time in s, RGB uint8 frame).

    With ``fps`` lower than the video's, frames are dropped evenly to that rate (never duplicated).
    Raises ``ValueError`` when the file cannot be read as a video (not a video, no video stream, frames
    over :data:`MAX_FRAME_PIXELS`), here or, for a file that breaks off badly mid-way, from the iterator. A
    truncated file whose frames decode up to the cut gives those frames.
    """
    import imageio_ffmpeg

    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0 (or None for the video's own rate); got {fps}.")
    if not Path(path).is_file():
        raise ValueError(f"cannot read {path} as a video: no such file.")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        width, height = (int(v) for v in meta["size"])
        source_fps = float(meta.get("fps") or 0.0)
        duration = float(meta.get("duration") or 0.0)
    except StopIteration as err:
        reader.close()
        raise ValueError(f"cannot read {path} as a video: ffmpeg gave no information about it.") from err
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as err:
        reader.close()
        raise ValueError(f"cannot read {path} as a video: {_ffmpeg_reason(err)}") from err
    if width <= 0 or height <= 0 or width * height > MAX_FRAME_PIXELS:
        reader.close()
        raise ValueError(f"cannot read {path} as a video: its frames are {width}x{height} pixels; accepted: up to "
                         f"{MAX_FRAME_PIXELS / 1e6:.0f} MP (8K). Downscale it first.")
    if not math.isfinite(source_fps) or source_fps <= 0:
        source_fps = 25.0
    info = VideoInfo(source_fps, width, height, duration if math.isfinite(duration) and duration > 0 else 0.0)

    def frames() -> Iterator[tuple[int, float, np.ndarray]]:
        step = 1.0 if fps is None or fps >= source_fps else source_fps / fps
        next_keep, sample = 0.0, 0
        try:
            for index, raw in enumerate(reader):
                if index + 1e-6 < next_keep:
                    continue
                next_keep += step
                frame = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
                yield sample, index / source_fps, frame
                sample += 1
        except (OSError, RuntimeError, ValueError) as err:  # ffmpeg stopped with an error mid-way
            raise ValueError(f"cannot read {path} past frame {sample}: {_ffmpeg_reason(err)}") from err
        finally:
            reader.close()

    return info, frames()


def write_video(path: str | Path, frames: list[np.ndarray] | np.ndarray, fps: float = 10.0, quality: int = 9) -> None:
    """Write RGB uint8 frames (all the same size) as an H.264 mp4 playing at ``fps`` (imageio-ffmpeg's encoder for
    .mp4: libx264 in its bundled ffmpeg, pixels in yuv420p, which browsers play; tests read the codec back)."""
    import imageio_ffmpeg

    frames = [np.ascontiguousarray(f, dtype=np.uint8) for f in frames]
    if not frames:
        raise ValueError("write_video needs at least one frame.")
    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, quality=quality, macro_block_size=1)
    writer.send(None)
    for frame in frames:
        if frame.shape != (h, w, 3):
            raise ValueError(f"all frames must be ({h}, {w}, 3) RGB uint8; got {frame.shape}.")
        writer.send(frame)
    writer.close()


def save_gif(frames: list[np.ndarray], path: str | Path, fps: float = 10.0) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, optimize=True)
