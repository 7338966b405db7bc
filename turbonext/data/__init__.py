"""Data preparation: videos -> ``dataset/video_id/scene_id/{images,poses}/00001.jpg``.

Light to import; the detectors are built (and their backends imported) only when
:func:`prepare_dataset` runs. Command line: ``turbonext prepare-data VIDEOS_DIR DATASET_DIR``.
"""

from __future__ import annotations

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "prepare_dataset": "turbonext.data.prepare",
    "benchmark_cache": "turbonext.data.prepare",
    "ShotCutDetector": "turbonext.data.scenes",
    "detect_cuts": "turbonext.data.scenes",
    "square_crop_box": "turbonext.data.crop",
    "crop_square": "turbonext.data.crop",
    "list_videos": "turbonext.data.video_io",
    "iter_frames": "turbonext.data.video_io",
    "write_video": "turbonext.data.video_io",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
