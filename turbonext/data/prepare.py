"""``turbonext prepare-data``: turn a folder of videos into the training dataset layout.

For every video: split into scenes at hard cuts; per frame, follow the main person (largest at
the start of the scene, then tracked), square-crop around them with a margin (black padding,
never stretched), set the background to pure black with a person mask, resize, and render the
pose. Output::

    DATASET_DIR/<video_id>/<scene_id>/images/00001.jpg
    DATASET_DIR/<video_id>/<scene_id>/poses/00001.jpg
    DATASET_DIR/<video_id>/<scene_id>/scene.json     (source frame of every output frame, counts)
    DATASET_DIR/<video_id>/video.json                (written when the whole video is done)
    DATASET_DIR/prepare_settings.json, DATASET_DIR/summary.json

Frames without a person are skipped and counted; scenes with fewer than ``min_scene_frames``
frames are dropped. A re-run skips finished videos and scenes. A video that cannot be read is
reported in the summary and skipped. The per-scene analysis (detection, tracking, crops, masks)
is cached on disk (:class:`turbonext.utils.feature_cache.FeatureCache`), keyed by the video's content
and every setting that changes it, so preparing the same videos again (another size of JPEG,
another output folder) skips the detectors.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from turbonext.data.analysis import FrameAnalysis, SceneAnalysis, SceneAnalyzer
from turbonext.data.crop import crop_square
from turbonext.data.scenes import ShotCutDetector
from turbonext.data.video_io import iter_frames, list_videos
from turbonext.pose.backends import PoseDetector
from turbonext.pose.detectors import get_detector
from turbonext.pose.render import render_pose
from turbonext.pose.segmentation import PersonSegmenter, get_segmenter
from turbonext.utils.feature_cache import FeatureCache
from turbonext.utils.hashing import hash_file


SETTINGS_FILE = "prepare_settings.json"
SUMMARY_FILE = "summary.json"
_COUNTS = ("frames_read", "frames_written", "frames_no_person", "scenes_written", "scenes_dropped_short")


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    if tmp.is_symlink():  # never write through a link left in the dataset folder
        tmp.unlink()
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True))
    tmp.replace(path)  # replaces a link at ``path`` itself, never its target


def inside(folder: Path, name: str) -> Path:
    """``folder / name`` for a folder or file prepare-data writes, refused (``ValueError``) when it would
    write outside ``folder``: ``name`` is not one plain name (``..``, ``/``), or the entry already exists as a
    symbolic link (a link planted in the dataset could make a resume write, or delete, elsewhere)."""
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise ValueError(f"refusing to write {name!r} in {folder}: not a plain file or folder name.")
    path = folder / name
    if path.is_symlink():
        raise ValueError(f"refusing to write through the symbolic link {path} (it points to {path.resolve()}); "
                         "prepare-data only writes inside DATASET_DIR. Remove the link.")
    return path


class _VideoPreparer:
    """Prepares one video scene by scene (the state of one run over one video)."""

    def __init__(self, video_id: str, path: Path, out_dir: Path, analyzer: SceneAnalyzer, cache: FeatureCache,
                 settings: dict[str, Any], analysis_key: dict[str, Any], progress: bool) -> None:
        self.video_id, self.path, self.out_dir = video_id, path, out_dir
        self.analyzer, self.cache, self.settings, self.analysis_key = analyzer, cache, settings, analysis_key
        self.progress = progress
        self.counts = dict.fromkeys(_COUNTS, 0) | {"scenes_resumed": 0, "scenes_from_cache": 0}
        self.video_hash = hash_file(path) if cache.enabled else ""

    def run(self) -> dict[str, int]:
        from tqdm.auto import tqdm

        info, frames = iter_frames(self.path, self.settings["fps"])
        fps = info.fps if self.settings["fps"] is None else min(info.fps, self.settings["fps"])
        total = int(round(info.duration * fps)) or None
        cutter = ShotCutDetector(self.settings["cut_threshold"])
        scene: dict[str, Any] | None = None
        for sample, t, frame in tqdm(frames, total=total, desc=self.video_id, unit="frame", leave=False, disable=not self.progress):
            cut = cutter.is_cut(frame)  # the first frame of a video is never a cut
            if scene is None or cut:
                if scene is not None:
                    self._finish_scene(scene)
                scene = self._start_scene(0 if scene is None else scene["index"] + 1)
            self._add_frame(scene, sample, t, frame)
            self.counts["frames_read"] += 1
        if scene is None:
            raise ValueError(f"{self.path} has no frames.")
        self._finish_scene(scene)
        return self.counts

    # ------------------------------------------------------------------------------- scenes
    def _start_scene(self, index: int) -> dict[str, Any]:
        name = f"scene_{index + 1:03d}"
        final = inside(self.out_dir, name)
        scene: dict[str, Any] = {"index": index, "name": name, "final": final, "position": 0,
                                 "written": [], "no_person": 0, "analysis": SceneAnalysis(self.settings["size"])}
        if (final / "scene.json").is_file():
            scene["mode"] = "resumed"
            return scene
        scene["key"] = self.cache.key("prepare-data-scene", self.video_hash, index, **self.analysis_key) if self.cache.enabled else None
        cached = self.cache.load_arrays(scene["key"]) if scene["key"] else None
        scene["mode"] = "compute" if cached is None else "cached"
        if cached is not None:
            scene["cached"] = SceneAnalysis.from_arrays(cached).frames
        self.analyzer.reset()
        tmp = inside(self.out_dir, f"{name}.partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / "images").mkdir(parents=True)
        (tmp / "poses").mkdir()
        scene["tmp"] = tmp
        return scene

    def _add_frame(self, scene: dict[str, Any], sample: int, t: float, frame: np.ndarray) -> None:
        position = scene["position"]
        scene["position"] += 1
        if scene["mode"] == "resumed":
            return
        if scene["mode"] == "cached":
            cached = scene["cached"]
            if position >= len(cached):
                raise ValueError(f"cached analysis of {self.video_id}/{scene['name']} has fewer frames than the video; clear the cache.")
            result: FrameAnalysis | None = cached[position]
        else:
            result = self.analyzer(frame, t)
            scene["analysis"].frames.append(result)
        if result is None:
            scene["no_person"] += 1
            return
        size = self.settings["size"]
        image = crop_square(frame, result.crop, size)
        image[~result.mask] = 0
        number = len(scene["written"]) + 1
        quality = self.settings["jpeg_quality"]
        Image.fromarray(image).save(scene["tmp"] / "images" / f"{number:05d}.jpg", quality=quality)
        pose = render_pose(result.keypoints, size=size, threshold=self.settings["keypoint_threshold"])
        pose.save(scene["tmp"] / "poses" / f"{number:05d}.jpg", quality=quality)
        scene["written"].append({"sample": sample, "time": round(t, 4)})

    def _finish_scene(self, scene: dict[str, Any]) -> None:
        if scene["mode"] == "resumed":
            meta = json.loads((scene["final"] / "scene.json").read_text())
            self.counts["scenes_resumed"] += 1
            self.counts["scenes_written"] += 1
            self.counts["frames_written"] += meta["num_frames"]
            self.counts["frames_no_person"] += meta["frames_no_person"]
            return
        if scene["mode"] == "compute" and scene["key"]:
            self.cache.save_arrays(scene["key"], scene["analysis"].to_arrays())
        if scene["mode"] == "cached":
            self.counts["scenes_from_cache"] += 1
        self.counts["frames_no_person"] += scene["no_person"]
        n = len(scene["written"])
        if n < self.settings["min_scene_frames"]:
            shutil.rmtree(scene["tmp"])
            self.counts["scenes_dropped_short"] += 1
            return
        meta = {"video": self.path.name, "scene_index": scene["index"], "num_frames": n,
                "frames_no_person": scene["no_person"], "frames": scene["written"]}
        _write_json(scene["tmp"] / "scene.json", meta)
        if scene["final"].exists():  # an unfinished folder from an older run without scene.json
            shutil.rmtree(scene["final"])
        scene["tmp"].rename(scene["final"])
        self.counts["scenes_written"] += 1
        self.counts["frames_written"] += n


def _prepare_all(videos: dict[str, Path], dataset: Path, analyzer: SceneAnalyzer, cache: FeatureCache,
                 settings: dict[str, Any], analysis_key: dict[str, Any], progress: bool,
                 per_video: dict[str, Any], failed: list[dict[str, str]]) -> None:
    """Prepare every video in turn, recording each one's counts (or failure) in ``per_video`` / ``failed``."""
    from tqdm.auto import tqdm

    for video_id, path in tqdm(videos.items(), desc="videos", unit="video", disable=not progress):
        try:
            out_dir = inside(dataset, video_id)  # a link planted in the dataset: this video fails, the others go on
            marker = out_dir / "video.json"
            if marker.is_file():
                per_video[video_id] = json.loads(marker.read_text()) | {"status": "resumed"}
                continue
            out_dir.mkdir(exist_ok=True)
            counts = _VideoPreparer(video_id, path, out_dir, analyzer, cache, settings, analysis_key, progress).run()
        except Exception as err:  # one bad video is reported in the summary and skipped, never ends the run
            failed.append({"video": str(path), "error": f"{type(err).__name__}: {err}"})
            per_video[video_id] = {"status": "failed"}
            continue
        _write_json(marker, counts | {"source": path.name})
        per_video[video_id] = counts | {"source": path.name, "status": "done"}


def prepare_dataset(
    videos_dir: str | Path,
    dataset_dir: str | Path,
    size: int = 512,
    fps: float | None = None,
    detector: str | PoseDetector = "auto",
    segmenter: str | PersonSegmenter = "auto",
    margin: float = 0.2,
    min_scene_frames: int = 8,
    cut_threshold: float = 30.0,
    keypoint_threshold: float = 0.3,
    jpeg_quality: int = 95,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    weights: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Prepare every video in ``videos_dir`` into ``dataset_dir``; returns the summary (also saved as summary.json).

    Args:
        videos_dir: folder of videos (mp4, mov, avi, mkv, webm, ...; not searched recursively).
        dataset_dir: output folder (created; a re-run resumes).
        size: output side in pixels.
        fps: sample the videos at this rate (None: every frame).
        detector, segmenter: "auto", "yolo", "mediapipe", or ready objects (e.g. test doubles).
        margin: crop margin around the person, as a fraction of their longer side.
        min_scene_frames: scenes with fewer written frames are dropped.
        cut_threshold: shot-cut score threshold (see :mod:`turbonext.data.scenes`).
        keypoint_threshold: keypoints under this confidence are not drawn.
        jpeg_quality: JPEG quality of the written images and poses.
        cache_dir: feature-cache folder (None: the default, see :func:`turbonext.utils.feature_cache.default_cache_dir`).
        use_cache: False disables the cache (``--no-cache``).
        weights: YOLO weights for the detector ("auto"/"yolo").
        device: torch device for YOLO.
        progress: show progress bars.
    """
    if size < 16 or not (1 <= jpeg_quality <= 100) or min_scene_frames < 1:
        raise ValueError(f"need size >= 16, 1 <= jpeg_quality <= 100, min_scene_frames >= 1; got {size}, {jpeg_quality}, {min_scene_frames}.")
    start = time.perf_counter()
    videos = list_videos(videos_dir)
    dataset = Path(dataset_dir)
    pose_detector = get_detector(detector, weights=weights, device=device)
    person_segmenter = get_segmenter(segmenter, device=device)
    analysis_key = {"size": size, "fps": fps, "margin": margin, "cut_threshold": cut_threshold,
                    "keypoint_threshold": keypoint_threshold, "detector": pose_detector.cache_id,
                    "segmenter": person_segmenter.cache_id, "crop_smoothing": "one-euro-0.5-0.02"}
    settings = analysis_key | {"min_scene_frames": min_scene_frames, "jpeg_quality": jpeg_quality}
    dataset.mkdir(parents=True, exist_ok=True)
    settings_path = dataset / SETTINGS_FILE
    if settings_path.is_file():
        previous = json.loads(settings_path.read_text())
        if previous != settings:
            changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            raise ValueError(
                f"{dataset} was prepared with other settings ({', '.join(changed)} differ); resuming would mix "
                f"them. Use another DATASET_DIR, or the same settings as in {settings_path}."
            )
    _write_json(settings_path, settings)
    cache = FeatureCache(cache_dir, enabled=use_cache)
    analyzer = SceneAnalyzer(pose_detector, person_segmenter, size, margin, keypoint_threshold)

    per_video: dict[str, Any] = {}
    failed: list[dict[str, str]] = []
    try:
        _prepare_all(videos, dataset, analyzer, cache, settings, analysis_key, progress, per_video, failed)
    finally:  # release the backends this call built (not the ones passed in)
        if isinstance(detector, str):
            pose_detector.close()
        if isinstance(segmenter, str):
            person_segmenter.close()

    totals = {k: sum(v.get(k, 0) for v in per_video.values()) for k in _COUNTS + ("scenes_resumed", "scenes_from_cache")}
    summary = {
        "videos_found": len(videos),
        "videos_done": sum(v["status"] == "done" for v in per_video.values()),
        "videos_resumed": sum(v["status"] == "resumed" for v in per_video.values()),
        "videos_failed": len(failed),
        **totals,
        "failed": failed,
        "videos": per_video,
        "cache": {"enabled": cache.enabled, "dir": str(cache.cache_dir), "hits": cache.hits, "misses": cache.misses},
        "settings": settings,
        "seconds": round(time.perf_counter() - start, 3),
    }
    _write_json(dataset / SUMMARY_FILE, summary)
    return summary


# ------------------------------------------------------------------------------------------ CLI


def benchmark_cache(videos_dir: str | Path, **kwargs: Any) -> dict[str, float]:
    """Prepare the videos twice with one fresh cache (cold, then hot) into temporary folders; return timings."""
    with tempfile.TemporaryDirectory(prefix="turbonext-cache-bench-") as tmp:
        kwargs = kwargs | {"cache_dir": Path(tmp) / "cache", "use_cache": True}
        t0 = time.perf_counter()
        cold = prepare_dataset(videos_dir, Path(tmp) / "cold", **kwargs)
        t1 = time.perf_counter()
        hot = prepare_dataset(videos_dir, Path(tmp) / "hot", **kwargs)
        t2 = time.perf_counter()
    return {"cold_s": t1 - t0, "hot_s": t2 - t1, "frames": float(cold["frames_read"]),
            "hot_scenes_from_cache": float(hot["scenes_from_cache"]), "cold_cache_hits": float(cold["cache"]["hits"])}
