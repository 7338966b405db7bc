"""The reference photo as the model sees it: a square crop around its main person, on black.

:func:`prepare_reference` crops the photo around the person a pose detector finds (the training
data's framing) and renders that person's pose in the same crop, which models that read the
reference pose need (:func:`reference_pose_for`). Used by the live session, the clip job and
``turbonext generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from turbonext.data.crop import CropBox, crop_square, keypoints_to_crop, square_crop_box
from turbonext.pose.keypoints import Person
from turbonext.pose.render import render_pose
from turbonext.utils.images import load_rgb


def native_size(pipe) -> int:
    """The square output size the pipeline was trained at (UNet sample size x 8)."""
    return int(pipe.unet.config.sample_size) * 8


@dataclass
class PreparedReference:
    """The reference as the model sees it: ``image`` (size x size uint8 RGB), whether a person was
    found (else a centre square crop was used), a ``notice`` for the user (or None), and the person's
    ``pose_map`` in the same crop (size x size uint8 RGB; None without a person), which models that
    read the reference pose need."""

    image: np.ndarray
    person_found: bool
    notice: str | None = None
    pose_map: np.ndarray | None = None


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


def pose_map_in_crop(person: Person, crop: CropBox, size: int) -> np.ndarray:
    """The person's pose rendered inside the square ``crop``, resized to ``size`` (uint8 RGB, size x size)."""
    return np.array(render_pose([keypoints_to_crop(person, crop, size)], size=(size, size)))


def main_person(people: list[Person]) -> Person | None:
    """The largest person with a box (None if nobody)."""
    candidates = [p for p in people if p.box() is not None]
    return max(candidates, key=lambda p: p.area()) if candidates else None


def prepare_reference(image, detector, size: int, margin: float = 0.2, require_person: bool = True) -> PreparedReference:
    """Crop the reference square around its main person, black outside the photo, resized to ``size``.

    With no person found: ``require_person=True`` raises a ``ValueError``; else a centre square crop
    is used and the returned ``notice`` says so.
    """
    rgb = load_rgb(image)
    person = main_person(detector.detect(rgb)) if detector is not None else None
    if person is not None:
        crop = square_crop_box(person.box(), margin=margin)
        return PreparedReference(crop_square(rgb, crop, size), True, pose_map=pose_map_in_crop(person, crop, size))
    reason = "no pose detector is available" if detector is None else "no person was found in the reference image"
    if require_person:
        raise ValueError(f"{reason}: use a photo that shows one person clearly (ideally the whole body, "
                         f"facing the camera).")
    h, w = rgb.shape[:2]
    side = min(h, w)
    crop = ((w - side) / 2.0, (h - side) / 2.0, float(side))
    return PreparedReference(crop_square(rgb, crop, size), False,
                             f"{reason}; using a centre square crop instead (results are best with one person "
                             f"shown head to toe).")
