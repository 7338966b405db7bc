"""Person masks for background removal: YOLO segmentation or mediapipe selfie segmentation.

``PersonSegmenter.segment(image, box=None) -> np.ndarray`` float32 (H, W) in [0, 1], 1 on the
person. With ``box`` (the main person's box), a backend that separates people (YOLO) returns the
mask of the person overlapping that box most, so other people count as background too; mediapipe
gives one mask for everyone. :func:`get_segmenter` picks a backend with the same "auto" rule as
:func:`turbonext.pose.detectors.get_detector`.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from turbonext.pose.backends import ModelBackend
from turbonext.pose.detectors import (
    INSTALL_HINT,
    import_mediapipe_solutions,
    import_ultralytics,
    to_numpy,
    weights_fingerprint,
    yolo_weights_usable,
)
from turbonext.pose.keypoints import BBox
from turbonext.utils.images import to_rgb_array


DEFAULT_YOLO_SEG_WEIGHTS = "yolo11n-seg.pt"


class PersonSegmenter(ModelBackend, abc.ABC):
    """Returns a soft person mask (H, W) float32 in [0, 1] for one RGB image."""

    name: str = "base"

    @abc.abstractmethod
    def segment(self, image: Image.Image | np.ndarray, box: BBox | None = None) -> np.ndarray:
        """Person mask of ``image``; ``box`` selects one person where the backend can."""

    def __call__(self, image: Image.Image | np.ndarray, box: BBox | None = None) -> np.ndarray:
        return self.segment(image, box)


def select_mask(masks: np.ndarray, box: BBox | None) -> np.ndarray:
    """From person masks (N, H, W): the one with most area inside ``box``, or their union."""
    if masks.shape[0] == 0:
        raise ValueError("select_mask needs at least one mask.")
    if box is None or masks.shape[0] == 1:
        return masks.max(axis=0)
    h, w = masks.shape[1:]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    inside = masks[:, y0:y1, x0:x1].reshape(masks.shape[0], -1).sum(axis=1)
    return masks[int(np.argmax(inside))]


class YoloPersonSegmenter(PersonSegmenter):
    """ultralytics YOLO instance segmentation, person class only (masks at full resolution)."""

    name = "yolo"

    def __init__(self, weights: str | Path = DEFAULT_YOLO_SEG_WEIGHTS, device: str | None = None,
                 conf: float = 0.25, imgsz: int = 640, model: Any | None = None) -> None:
        self.weights, self.device, self.conf, self.imgsz = str(weights), device, conf, imgsz
        if model is None:
            model = import_ultralytics().YOLO(self.weights, task="segment")
        task = getattr(model, "task", "segment")
        if task != "segment":
            raise ValueError(f"YOLO weights {self.weights!r} are a {task!r} model; person masks need segmentation weights (e.g. 'yolo11n-seg.pt').")
        self.model = model

    @property
    def cache_id(self) -> str:
        return f"yolo-seg:{weights_fingerprint(self.weights)}:conf={self.conf}:imgsz={self.imgsz}"

    def segment(self, image: Image.Image | np.ndarray, box: BBox | None = None) -> np.ndarray:
        rgb = to_rgb_array(image)
        kwargs: dict[str, Any] = {"conf": self.conf, "imgsz": self.imgsz, "classes": [0], "retina_masks": True, "verbose": False}
        if self.device is not None:
            kwargs["device"] = self.device
        result = self.model.predict(np.ascontiguousarray(rgb[:, :, ::-1]), **kwargs)[0]
        if result.masks is None or len(result.masks.data) == 0:
            return np.zeros(rgb.shape[:2], np.float32)
        masks = to_numpy(result.masks.data)
        if masks.shape[1:] != rgb.shape[:2]:  # retina masks should match; resize if a backend differs
            masks = np.stack([np.asarray(Image.fromarray(m).resize(rgb.shape[1::-1], Image.BILINEAR)) for m in masks])
        return np.clip(select_mask(masks, box), 0.0, 1.0).astype(np.float32)


class MediaPipeSegmenter(PersonSegmenter):
    """mediapipe 0.10.x selfie segmentation, offline (one mask for every person in view).

    Args:
        model_selection: 0 (general, 256x256 model) or 1 (landscape, faster).
    """

    name = "mediapipe"

    def __init__(self, model_selection: int = 0) -> None:
        if model_selection not in (0, 1):
            raise ValueError(f"model_selection must be 0 or 1; got {model_selection}.")
        self._seg = import_mediapipe_solutions().selfie_segmentation.SelfieSegmentation(model_selection=model_selection)
        import mediapipe

        self._cache_id = f"mediapipe-selfie:{mediapipe.__version__}:model={model_selection}"

    @property
    def cache_id(self) -> str:
        return self._cache_id

    def segment(self, image: Image.Image | np.ndarray, box: BBox | None = None) -> np.ndarray:
        rgb = to_rgb_array(image)
        if self._seg is None:
            raise ValueError("this MediaPipeSegmenter was closed; build a new one.")
        mask = np.asarray(self._seg.process(rgb).segmentation_mask, dtype=np.float32)
        return np.clip(mask, 0.0, 1.0)

    def close(self) -> None:
        if getattr(self, "_seg", None) is not None:
            self._seg.close()
            self._seg = None


def get_segmenter(segmenter: str | PersonSegmenter = "auto", weights: str | Path | None = None,
                  device: str | None = None, **kwargs: Any) -> PersonSegmenter:
    """Build a person segmenter: "auto", "yolo" or "mediapipe" (or a ready one, returned as is).

    "auto" takes YOLO when its segmentation weights are on disk or downloadable, else mediapipe,
    else raises an ImportError naming what to install.
    """
    if isinstance(segmenter, PersonSegmenter):
        return segmenter
    if segmenter == "yolo":
        return YoloPersonSegmenter(weights or DEFAULT_YOLO_SEG_WEIGHTS, device=device, **kwargs)
    if segmenter == "mediapipe":
        return MediaPipeSegmenter(**kwargs)
    if segmenter != "auto":
        raise ValueError(f"unknown segmenter {segmenter!r}; expected 'auto', 'yolo', 'mediapipe' or a PersonSegmenter.")
    reasons = []
    weights = weights or DEFAULT_YOLO_SEG_WEIGHTS
    ok, reason = yolo_weights_usable(weights)
    if ok:
        try:
            return YoloPersonSegmenter(weights, device=device)
        except OSError as err:  # download failed (ConnectionError) or unreadable weights file
            reasons.append(f"YOLO: could not load {weights!r}: {err}")
    else:
        reasons.append(f"YOLO: {reason}")
    try:
        return MediaPipeSegmenter(**{k: v for k, v in kwargs.items() if k == "model_selection"})
    except ImportError as err:
        reasons.append(f"mediapipe: {err}")
    raise ImportError("No person segmenter is usable:\n  - " + "\n  - ".join(reasons) + f"\nInstall one with: {INSTALL_HINT}")


def apply_mask(image: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with everything where ``mask < threshold`` set to pure black (0, 0, 0)."""
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}.")
    out = image.copy()
    out[mask < threshold] = 0
    return out
