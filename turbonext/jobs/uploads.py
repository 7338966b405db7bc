"""Files a user uploads (the reference photo, the driving video), checked with messages meant for that user.

Each check says what was wrong with *this* file (by its name, not the server's temporary path) and what is
accepted. Photos are decoded by :func:`turbonext.utils.images.load_rgb`; a very large photo is scaled down
with a notice (the model sees a few hundred pixels of it). Used by the app; free of any UI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from turbonext.data.video_io import VIDEO_EXTENSIONS
from turbonext.utils.images import load_rgb


ACCEPTED_IMAGES = "a PNG, JPEG, WebP or BMP photo"
ACCEPTED_VIDEOS = "a video file (" + ", ".join(ext.lstrip(".").upper() for ext in VIDEO_EXTENSIONS) + ")"
#: Photos larger than this (pixels, longer side) are scaled down to it: the model sees a 256-512 px crop.
MAX_IMAGE_SIDE = 2048


def display_name(path) -> str:
    """The name the user gave the file (Gradio keeps it as the last part of the upload's path)."""
    return Path(str(path)).name or str(path)


def _reason(err: BaseException) -> str:
    """The innermost message of a decoding error, on one line, without the server's paths."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = " ".join(str(err).split()) or type(err).__name__
    return text.split(" '/")[0].split(' "/')[0].rstrip(":") or type(err).__name__


def read_image_upload(path, what: str = "reference photo", max_side: int = MAX_IMAGE_SIDE) -> tuple[np.ndarray, list[str]]:
    """An uploaded image file -> (uint8 RGB array, notices), or a ``ValueError`` whose message is one sentence
    for the user: what was wrong with the file and what is accepted.

    Arrays and PIL images (e.g. a webcam snapshot) are accepted as they are. A photo whose longer side exceeds
    ``max_side`` is scaled down to it, with a notice.
    """
    if path is None:
        raise ValueError(f"No {what} yet: upload {ACCEPTED_IMAGES} of one person.")
    notices: list[str] = []
    if isinstance(path, (str, Path)):
        name, file = display_name(path), Path(path)
        if not file.is_file():
            raise ValueError(f"The {what} {name!r} was not found on the server; upload it again.")
        if file.stat().st_size == 0:
            raise ValueError(f"The {what} {name!r} is empty (0 bytes). Upload {ACCEPTED_IMAGES} of one person.")
        try:
            rgb = load_rgb(file, what)
        except Exception as err:  # PIL's decoders raise many kinds (OSError, SyntaxError, DecompressionBombError...)
            if "too large" in str(err):
                raise ValueError(f"The {what} {name!r} has too many pixels to read safely ({_reason(err)}). Scale it "
                                 f"down (the model sees at most 512x512) and upload it again.") from err
            raise ValueError(f"The {what} {name!r} could not be read as an image ({_reason(err)}): it may be damaged "
                             f"or not an image. Upload {ACCEPTED_IMAGES} of one person.") from err
    else:
        rgb = load_rgb(path, what)
    h, w = rgb.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))
        notices.append(f"The {what} is {w}x{h} pixels; it was scaled down to {size[0]}x{size[1]} "
                       f"(the model sees a few hundred pixels of it).")
    return rgb, notices


def check_video_upload(path) -> str:
    """The uploaded driving video's path if it has a video's extension and is not empty, else a ``ValueError``
    saying what is accepted (decoding problems are reported when the frames are read)."""
    if not path:
        raise ValueError(f"No driving video yet: upload {ACCEPTED_VIDEOS} of one person moving, "
                         f"or choose a built-in motion.")
    name, file = display_name(path), Path(path)
    if not file.is_file():
        raise ValueError(f"The driving video {name!r} was not found on the server; upload it again.")
    if file.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"{name!r} is not a video. Upload {ACCEPTED_VIDEOS} of one person moving.")
    if file.stat().st_size == 0:
        raise ValueError(f"The driving video {name!r} is empty (0 bytes). Upload {ACCEPTED_VIDEOS} of one person moving.")
    return str(file)
