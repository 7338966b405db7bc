"""Pose detectors behind one interface: ``PoseDetector.detect(image) -> list[Person]``.

Backends:

* :class:`YoloPoseDetector` - ultralytics YOLO pose (default weights ``yolo26n-pose.pt``; any YOLO
  pose weights, or a model ``.yaml`` for random weights). ultralytics is AGPL-3.0, so it lives in
  the optional ``[pose]`` extra and is imported only here, lazily.
* :class:`MediaPipePoseDetector` - mediapipe 0.10.14 ``solutions.pose``; its wheel ships the model,
  so it works offline. It finds one person per image; its 33 landmarks are mapped to COCO-17.

:func:`get_detector` builds one by name; ``"auto"`` takes YOLO when its weights are on disk or can
be downloaded, else mediapipe, else raises an ``ImportError`` saying what to install.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from turbonext.pose.backends import PoseDetector
from turbonext.pose.keypoints import NUM_KEYPOINTS, Person
from turbonext.pose.smoothing import SmoothedPoseDetector
from turbonext.utils.hashing import hash_file
from turbonext.utils.images import to_rgb_array


DEFAULT_YOLO_POSE_WEIGHTS = "yolo26n-pose.pt"
INSTALL_HINT = "pip install 'turbonext[pose]'  (or: pip install ultralytics / pip install mediapipe==0.10.14)"

#: mediapipe's 33 pose landmarks -> COCO-17, in COCO order.
MEDIAPIPE_TO_COCO: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


# --------------------------------------------------------------------------------------- YOLO
def import_ultralytics() -> Any:
    """Import ultralytics with its run-time package installs off, or raise an ImportError (one line) that says
    what to install.

    ultralytics checks its requirements while it runs and pip-installs what is missing ("AutoUpdate"). turbonext
    never lets a library install packages at run time, so before the import ``YOLO_AUTOINSTALL`` is set to
    false (ultralytics reads it once, into ``ultralytics.utils.AUTOINSTALL``, which ``ultralytics.utils.checks``
    copies), and after it both copies are set to False as well (for an ultralytics imported earlier by someone
    else). A user's ``YOLO_AUTOINSTALL=true`` is overridden on purpose.

    Importing ultralytics also replaces ``PIL.Image.open`` for the whole process with a version that, on a file
    PIL cannot identify, tries to install and import ``pi-heif`` (HEIC support): every later
    ``UnidentifiedImageError`` (an upload that is not an image, in Gradio or in :func:`~turbonext.utils.images.load_rgb`)
    became ``ModuleNotFoundError: No module named 'pi_heif'``. The original ``PIL.Image.open`` is put back
    (turbonext reads no HEIC files; ultralytics decodes images with OpenCV).
    """
    os.environ["YOLO_AUTOINSTALL"] = "false"
    try:
        import ultralytics
    except ImportError as err:  # includes a broken install (missing torchvision metadata)
        raise ImportError(
            f"The YOLO pose backend needs ultralytics (AGPL-3.0), which could not be imported ({err}). "
            f"Install it with: {INSTALL_HINT}"
        ) from err
    disable_ultralytics_side_effects()
    return ultralytics


def disable_ultralytics_side_effects() -> None:
    """In an imported ultralytics: no package installs at run time (``AUTOINSTALL`` off in ``ultralytics.utils``
    and in ``ultralytics.utils.checks``, which holds its own copy), and PIL's own ``Image.open`` back in place of
    ultralytics' HEIC patch (see :func:`import_ultralytics`). A no-op for modules not imported."""
    for name in ("ultralytics.utils", "ultralytics.utils.checks"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "AUTOINSTALL"):
            module.AUTOINSTALL = False
    patches = sys.modules.get("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = original  # the PIL.Image module's attribute, for every caller


def find_yolo_weights(weights: str | Path) -> Path | None:
    """Local path of YOLO ``weights`` (as given, or in ultralytics' weights folder), else None."""
    path = Path(weights)
    if path.is_file():
        return path
    try:
        import_ultralytics()  # installs off before ultralytics.utils is first imported
        from ultralytics.utils import SETTINGS
    except ImportError:
        return None
    candidate = Path(SETTINGS.get("weights_dir", "")) / path.name
    return candidate if candidate.is_file() else None


def weights_fingerprint(weights: str | Path) -> str:
    """The weights' name plus the SHA-256 of the local file when there is one (for cache keys)."""
    path = find_yolo_weights(weights)
    if path is None:
        return str(weights)
    return f"{Path(weights).name}@{hash_file(path)[:16]}"


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor or array-like -> numpy array (no torch import needed)."""
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu"):
        value = value.cpu()
    return np.asarray(value, dtype=np.float32)


def people_from_yolo_result(result: Any) -> list[Person]:
    """Convert one ultralytics ``Results`` (pose task) to a list of :class:`Person`."""
    keypoints = getattr(result, "keypoints", None)
    if keypoints is None:
        raise ValueError(
            "the YOLO model returned no keypoints: its weights are not a pose model. Use pose weights "
            "such as 'yolo26n-pose.pt' or 'yolo11n-pose.pt'."
        )
    xy = to_numpy(keypoints.xy)
    if xy.ndim != 3 or (len(xy) and xy.shape[1] != NUM_KEYPOINTS):
        raise ValueError(f"expected COCO-17 keypoints from the YOLO pose model; got shape {xy.shape}.")
    n = xy.shape[0]
    conf = to_numpy(keypoints.conf) if getattr(keypoints, "conf", None) is not None else np.ones((n, NUM_KEYPOINTS), np.float32)
    boxes = getattr(result, "boxes", None)
    xyxy = to_numpy(boxes.xyxy) if boxes is not None else np.zeros((0, 4), np.float32)
    scores = to_numpy(boxes.conf) if boxes is not None else np.zeros((0,), np.float32)
    people = []
    for i in range(n):
        kp = np.concatenate([xy[i], conf[i][:, None]], axis=1)
        bbox = tuple(float(v) for v in xyxy[i]) if i < len(xyxy) else None
        people.append(Person(kp, float(scores[i]) if i < len(scores) else 1.0, bbox))  # type: ignore[arg-type]
    return people


class YoloPoseDetector(PoseDetector):
    """ultralytics YOLO pose.

    Args:
        weights: YOLO pose weights (a file, or a name ultralytics downloads, e.g. "yolo11n-pose.pt"),
            or a model ``.yaml`` (random weights; for tests).
        device: torch device string for inference (None: ultralytics' choice).
        conf: minimum person confidence.
        imgsz: inference size.
        model: an already built ``ultralytics.YOLO`` (or compatible) object; ``weights`` is then ignored.
    """

    name = "yolo"

    def __init__(
        self,
        weights: str | Path = DEFAULT_YOLO_POSE_WEIGHTS,
        device: str | None = None,
        conf: float = 0.25,
        imgsz: int = 640,
        model: Any | None = None,
    ) -> None:
        self.weights = str(weights)
        self.device = device
        self.conf = conf
        self.imgsz = imgsz
        if model is None:
            ultralytics = import_ultralytics()
            model = ultralytics.YOLO(self.weights, task="pose")
        task = getattr(model, "task", "pose")
        if task != "pose":
            raise ValueError(f"YOLO weights {self.weights!r} are a {task!r} model; the pose detector needs pose weights.")
        self.model = model

    @property
    def cache_id(self) -> str:
        return f"yolo-pose:{weights_fingerprint(self.weights)}:conf={self.conf}:imgsz={self.imgsz}"

    def detect(self, image: Image.Image | np.ndarray) -> list[Person]:
        rgb = to_rgb_array(image)
        kwargs: dict[str, Any] = {"conf": self.conf, "imgsz": self.imgsz, "verbose": False}
        if self.device is not None:
            kwargs["device"] = self.device
        # ultralytics reads numpy arrays as BGR (OpenCV order).
        results = self.model.predict(np.ascontiguousarray(rgb[:, :, ::-1]), **kwargs)
        return people_from_yolo_result(results[0])


# ---------------------------------------------------------------------------------- mediapipe
def import_mediapipe_solutions() -> Any:
    """Import ``mediapipe.solutions`` (mediapipe 0.10.x), or raise an ImportError saying what to install."""
    try:
        import mediapipe as mp
    except ImportError as err:
        raise ImportError(f"The mediapipe backend needs mediapipe==0.10.14 ({err}). Install it with: {INSTALL_HINT}") from err
    solutions = getattr(mp, "solutions", None)
    if solutions is None:
        raise ImportError(
            f"mediapipe {getattr(mp, '__version__', '?')} has no 'solutions' API (mediapipe 1.x dropped it "
            f"and ships no models). Install it with: pip install mediapipe==0.10.14"
        )
    return solutions


class MediaPipePoseDetector(PoseDetector):
    """mediapipe 0.10.x BlazePose, offline; one person per image, mapped to COCO-17.

    Confidence of each keypoint is mediapipe's landmark ``visibility``.

    Args:
        model_complexity: 0 (lite), 1 (full) or 2 (heavy).
        min_detection_confidence: person detection threshold.
        video_mode: track across calls (faster, steadier on a video); False treats every image alone.
    """

    name = "mediapipe"

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5, video_mode: bool = False) -> None:
        if model_complexity not in (0, 1, 2):
            raise ValueError(f"model_complexity must be 0, 1 or 2; got {model_complexity}.")
        solutions = import_mediapipe_solutions()
        import mediapipe

        self._cache_id = (
            f"mediapipe-pose:{mediapipe.__version__}:complexity={model_complexity}:"
            f"min_conf={min_detection_confidence}:video={video_mode}"
        )
        self._pose_kwargs = dict(static_image_mode=not video_mode, model_complexity=model_complexity,
                                 min_detection_confidence=min_detection_confidence)
        self._solutions = solutions
        self._pose = solutions.pose.Pose(**self._pose_kwargs)

    @property
    def cache_id(self) -> str:
        return self._cache_id

    def reset(self) -> None:
        """Forget the tracked person (video mode follows the last person it saw into the next image, even a
        photo or video without anyone: a fresh tracker per scene)."""
        if getattr(self, "_pose", None) is not None and not self._pose_kwargs["static_image_mode"]:
            self._pose.close()
            self._pose = self._solutions.pose.Pose(**self._pose_kwargs)

    def detect(self, image: Image.Image | np.ndarray) -> list[Person]:
        rgb = to_rgb_array(image)
        if self._pose is None:
            raise ValueError("this MediaPipePoseDetector was closed; build a new one.")
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return []
        height, width = rgb.shape[:2]
        landmarks = result.pose_landmarks.landmark
        kp = np.array(
            [[landmarks[i].x * width, landmarks[i].y * height, landmarks[i].visibility] for i in MEDIAPIPE_TO_COCO],
            dtype=np.float32,
        )
        kp[:, 2] = np.clip(kp[:, 2], 0.0, 1.0)
        return [Person(kp, float(kp[:, 2].mean()))]

    def close(self) -> None:
        if getattr(self, "_pose", None) is not None:
            self._pose.close()
            self._pose = None


# ------------------------------------------------------------------------------------ factory
def offline_mode() -> bool:
    """True when the environment asks for no downloads (HF_HUB_OFFLINE=1 or YOLO_OFFLINE=1)."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on") for var in ("HF_HUB_OFFLINE", "YOLO_OFFLINE"))


def yolo_weights_usable(weights: str | Path) -> tuple[bool, str]:
    """Whether YOLO ``weights`` can be loaded here, and why not: (ok, reason)."""
    try:
        import_ultralytics()
    except ImportError as err:
        return False, str(err)
    if str(weights).endswith((".yaml", ".yml")) or find_yolo_weights(weights) is not None:
        return True, ""
    if offline_mode():
        return False, f"YOLO weights {weights!r} are not on disk and downloads are off (HF_HUB_OFFLINE / YOLO_OFFLINE)."
    return True, ""  # ultralytics downloads them on first use; a failure is caught by the caller


def get_detector(
    detector: str | PoseDetector = "auto",
    weights: str | Path | None = None,
    device: str | None = None,
    smoothing: bool = False,
    **kwargs: Any,
) -> PoseDetector:
    """Build a pose detector by name.

    Args:
        detector: "auto", "yolo" or "mediapipe" (or a ready :class:`PoseDetector`, returned as is,
            wrapped for smoothing if asked).
        weights: YOLO weights (default ``yolo26n-pose.pt``); ignored by mediapipe.
        device: torch device for YOLO.
        smoothing: wrap the detector in a per-track One-Euro filter (for webcam jitter).
        **kwargs: passed to the backend class.

    "auto" takes YOLO when its weights are on disk or downloadable, else mediapipe; if neither
    works it raises an ImportError naming what to install.
    """
    if isinstance(detector, PoseDetector):
        built = detector
    elif detector == "yolo":
        built = YoloPoseDetector(weights or DEFAULT_YOLO_POSE_WEIGHTS, device=device, **kwargs)
    elif detector == "mediapipe":
        built = MediaPipePoseDetector(**kwargs)
    elif detector == "auto":
        built = _auto_detector(weights or DEFAULT_YOLO_POSE_WEIGHTS, device, kwargs)
    else:
        raise ValueError(f"unknown detector {detector!r}; expected 'auto', 'yolo', 'mediapipe' or a PoseDetector.")
    if smoothing:
        built = SmoothedPoseDetector(built)
    return built


def _auto_detector(weights: str | Path, device: str | None, kwargs: dict[str, Any]) -> PoseDetector:
    reasons = []
    ok, reason = yolo_weights_usable(weights)
    if ok:
        try:
            yolo_kwargs = {k: v for k, v in kwargs.items() if k in ("conf", "imgsz")}
            return YoloPoseDetector(weights, device=device, **yolo_kwargs)
        except OSError as err:  # download failed (ConnectionError) or unreadable weights file
            reasons.append(f"YOLO: could not load {weights!r}: {err}")
    else:
        reasons.append(f"YOLO: {reason}")
    try:
        return MediaPipePoseDetector(**{k: v for k, v in kwargs.items() if k in ("model_complexity", "min_detection_confidence", "video_mode")})
    except ImportError as err:
        reasons.append(f"mediapipe: {err}")
    reasons = [" ".join(reason.split(" Install it with:")[0].split()) for reason in reasons]  # one line, one hint
    raise ImportError(f"No pose detector is usable ({'; '.join(reasons)}). Install one with: {INSTALL_HINT}")
