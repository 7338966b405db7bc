"""The reference photo as the model sees it: a square crop around its main person, on black, never stretched.

:func:`prepare_reference` frames the photo like the training data (a square around the person, black
where the square leaves the photo), resized uniformly to the model's size, and renders that person's
pose in the same crop, which models that read the reference pose need (:func:`reference_pose_for`).
Where the person is found, in order: the keypoints a pose detector finds; else (no detector, or it
found nobody, e.g. a synthetic figure) a square photo is used whole and a non-square one is cropped
around its non-background pixels (:func:`foreground_box`); else a centre square crop. What was done is
kept on the result (``method``, ``crop``, :attr:`PreparedReference.summary`). Used by the live session,
the clip job (the app) and ``turbonext generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from turbonext.data.crop import CropBox, crop_square, keypoints_to_crop, square_crop_box
from turbonext.pose.keypoints import BBox, Person
from turbonext.pose.render import POSE_STYLES, render_pose
from turbonext.utils.images import load_rgb


#: How :func:`prepare_reference` framed the photo.
METHODS = ("person", "foreground", "whole", "centre")


def native_size(pipe) -> int:
    """The square output size the pipeline was trained at (UNet sample size x 8)."""
    return int(pipe.unet.config.sample_size) * 8


@dataclass
class PreparedReference:
    """The reference as the model sees it: ``image`` (size x size uint8 RGB), whether a person was
    found (else the photo's figure, the whole square photo or a centre square crop was used), a
    ``notice`` for the user (or None), and the person's ``pose_map`` in the same crop (size x size
    uint8 RGB; None without a person), which models that read the reference pose need.

    ``method`` says how the photo was framed (one of :data:`METHODS`), ``crop`` is the square taken from
    it, ``(x0, y0, side)`` in the photo's pixels (it may reach outside the photo: black there), and
    ``source_size`` is the photo's (width, height)."""

    image: np.ndarray
    person_found: bool
    notice: str | None = None
    pose_map: np.ndarray | None = None
    method: str = "person"
    crop: CropBox | None = None
    source_size: tuple[int, int] | None = None

    @property
    def crop_box(self) -> tuple[int, int, int, int] | None:
        """The square taken from the photo as integer pixels (x0, y0, x1, y1), or None if unknown."""
        if self.crop is None:
            return None
        x0, y0, side = (int(round(v)) for v in self.crop)
        return x0, y0, x0 + max(1, side), y0 + max(1, side)

    @property
    def summary(self) -> str:
        """One sentence for the user, e.g. "reference 640x480 cropped to the person (x0,y0,x1,y1) and resized
        to 256x256"."""
        size = self.image.shape[0]
        if self.source_size is None or self.crop_box is None:
            return f"reference prepared at {size}x{size}"
        w, h = self.source_size
        x0, y0, x1, y1 = self.crop_box
        box = f"({x0},{y0},{x1},{y1})"
        what = {"person": f"cropped to the person {box}",
                "foreground": f"cropped to the figure on its plain background {box}",
                "whole": "used whole (it is square)",
                "centre": f"centre-cropped to {box} (no person found)"}[self.method]
        padded = x0 < 0 or y0 < 0 or x1 > w or y1 > h
        resized = "kept at" if (w, h) == (size, size) and self.method == "whole" else "resized to"
        return (f"reference {w}x{h} {what}{', padded black outside the photo,' if padded else ''} and "
                f"{resized} {size}x{size}")


def reference_pose_for(pipe, prepared: PreparedReference) -> np.ndarray | None:
    """The ``reference_pose`` argument for ``pipe``: the prepared pose map if the model reads one, else None.

    Raises a ``ValueError`` for a model that needs it when no person was found in the reference.
    """
    if not getattr(pipe, "reads_reference_pose", False):
        return None
    if prepared.pose_map is None:
        raise ValueError("this model needs the pose of the person in the reference photo, and no person was found "
                         "in it (or no pose detector is installed: pip install 'turbonext[pose]'): use a photo "
                         "that shows one person clearly, ideally head to toe.")
    return prepared.pose_map


def pose_map_in_crop(person: Person, crop: CropBox, size: int, style: str = "turbonext") -> np.ndarray:
    """The person's pose rendered inside the square ``crop``, resized to ``size`` (uint8 RGB, size x size), drawn
    in ``style`` (:data:`turbonext.pose.POSE_STYLES`)."""
    return np.array(render_pose([keypoints_to_crop(person, crop, size)], size=(size, size), style=style))


def pose_style_of(pipe) -> str:
    """The pose-map style ``pipe``'s model was trained on (``pipe.config.pose_style``; turbonext's own by default).

    Raises a ``ValueError`` for models that body poses cannot drive (RAIN v0.1 reads face landmarks)."""
    style = getattr(getattr(pipe, "config", None), "pose_style", None) or "turbonext"
    if style == "rain_face":
        raise ValueError(
            "this model (RAIN v0.1) is driven by 68-point face landmarks drawn RAIN's way, not by body poses: "
            "turbonext ships no face-landmark detector, so photos and videos cannot drive it here. Draw the maps "
            "with turbonext.pose.render_face_landmarks(landmarks) from your own detector and pass them as pose images.")
    if style not in POSE_STYLES:
        raise ValueError(f"this model's pose_style {style!r} is not one turbonext draws ({', '.join(POSE_STYLES)}).")
    return style


def main_person(people: list[Person]) -> Person | None:
    """The largest person with a box (None if nobody)."""
    candidates = [p for p in people if p.box() is not None]
    return max(candidates, key=lambda p: p.area()) if candidates else None


def foreground_box(rgb: np.ndarray, tolerance: int = 24, plain_border: float = 0.6,
                   min_fraction: float = 0.002) -> BBox | None:
    """The box (x0, y0, x1, y1) of the pixels that differ from a plain background, or None.

    The background colour is the median of the image's outermost pixels (black for the synthetic data
    and prepared crops). It counts as plain when at least ``plain_border`` of those border pixels lie
    within ``tolerance`` (per channel, 0-255) of it; a busy photo has no plain background (None). A
    pixel is foreground when a channel differs from the background by more than ``tolerance``; rows and
    columns with fewer than ``min_fraction`` of their pixels in the foreground (noise) are ignored.
    """
    h, w = rgb.shape[:2]
    if h < 3 or w < 3:
        return None
    image = rgb.astype(np.int16)
    border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    background = np.median(border, axis=0)
    if (np.abs(border - background).max(axis=1) <= tolerance).mean() < plain_border:
        return None
    mask = np.abs(image - background).max(axis=2) > tolerance
    cols = np.flatnonzero(mask.sum(axis=0) >= max(1.0, min_fraction * h))
    rows = np.flatnonzero(mask.sum(axis=1) >= max(1.0, min_fraction * w))
    if cols.size == 0 or rows.size == 0:
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def prepare_reference(image, detector, size: int, margin: float = 0.2, require_person: bool = True,
                      pose_style: str = "turbonext") -> PreparedReference:
    """Crop the reference square around its main person, black outside the photo, resized to ``size``.

    The photo is never stretched: the square is resized uniformly. With a ``detector`` (a
    :class:`~turbonext.pose.backends.PoseDetector`, or None) the square is centred on the box of the
    main person's keypoints, ``margin`` of their longer side on each side. With no person found:
    ``require_person=True`` raises a ``ValueError``; else a square photo is used whole, a non-square one
    is cropped the same way around its :func:`foreground_box` (a figure on a plain background, e.g. black),
    and failing that a centre square crop is used; the returned ``notice`` says so. ``pose_style``: how the
    reference's ``pose_map`` is drawn (the model's, :func:`pose_style_of`).
    """
    rgb = load_rgb(image)
    h, w = rgb.shape[:2]
    person = main_person(detector.detect(rgb)) if detector is not None else None
    if person is not None:
        crop = square_crop_box(person.box(), margin=margin)
        return PreparedReference(crop_square(rgb, crop, size), True, pose_map=pose_map_in_crop(person, crop, size, pose_style),
                                 method="person", crop=crop, source_size=(w, h))
    reason = "no pose detector is available" if detector is None else "no person was found in the reference image"
    if require_person:
        raise ValueError(f"{reason}: use a photo that shows one person clearly (ideally the whole body, "
                         f"facing the camera).")
    figure = foreground_box(rgb) if h != w else None
    if h == w:
        method, crop, instead = "whole", (0.0, 0.0, float(w)), "using the whole (square) image instead"
    elif figure is not None:
        method, crop = "foreground", square_crop_box(figure, margin=margin)
        instead = "cropping square around the figure against its plain background instead"
    else:
        side = min(h, w)
        method, crop = "centre", ((w - side) / 2.0, (h - side) / 2.0, float(side))
        instead = "using a centre square crop instead"
    return PreparedReference(crop_square(rgb, crop, size), False,
                             f"{reason}; {instead} (results are best with one person shown head to toe).",
                             method=method, crop=crop, source_size=(w, h))
