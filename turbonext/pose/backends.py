"""The interface every pose model backend shares: :class:`ModelBackend` (cache id, ``close``, ``with``)
and :class:`PoseDetector` (``detect(image) -> list[Person]``). The backends themselves live in
:mod:`turbonext.pose.detectors` and :mod:`turbonext.pose.segmentation`.
"""

from __future__ import annotations

import abc

import numpy as np
from PIL import Image

from turbonext.pose.keypoints import Person


class ModelBackend:
    """What every model backend (pose detector, person segmenter) shares: a cache id, close, ``with``."""

    name: str = "base"

    @property
    def cache_id(self) -> str:
        """Names the backend and every setting that changes its output (part of cache keys)."""
        return type(self).__qualname__

    def close(self) -> None:
        """Release backend resources (a no-op unless the backend holds any)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PoseDetector(ModelBackend, abc.ABC):
    """Finds people and their COCO-17 keypoints (pixels of the input image) in one RGB image."""

    name: str = "base"

    @abc.abstractmethod
    def detect(self, image: Image.Image | np.ndarray) -> list[Person]:
        """Detect every person in ``image`` (PIL RGB, or uint8 RGB array (H, W, 3))."""

    def reset(self) -> None:
        """Forget any tracking state before a new scene (the next video, a new photo); a no-op for detectors
        that treat every image alone. A tracking detector that is not reset can carry the person of one
        image into the next (e.g. the reference photo's person into a driving video without anyone)."""

    def __call__(self, image: Image.Image | np.ndarray) -> list[Person]:
        return self.detect(image)
