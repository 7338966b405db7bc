"""Training TurboNext on ``dataset/<video_id>/<scene_id>/{images,poses}`` data (``training/train.py``).

Light to import: the heavy modules (diffusers, accelerate) load only when a name below is used.

* :class:`TrainConfig` / :func:`load_config`: the YAML config with ``key=value`` overrides.
* :class:`PoseVideoDataset`: reference frame + clip of target frames and poses.
* :func:`train`: the accelerate training loop; :func:`export_pipeline`: checkpoint -> pipeline folder.
"""

from __future__ import annotations

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "TrainConfig": "turbonext.trainer.config",
    "load_config": "turbonext.trainer.config",
    "PoseVideoDataset": "turbonext.trainer.dataset",
    "pose_heatmap": "turbonext.trainer.losses",
    "diffusion_loss": "turbonext.trainer.losses",
    "train": "turbonext.trainer.loop",
    "TrainResult": "turbonext.trainer.loop",
    "export_pipeline": "turbonext.trainer.export",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
