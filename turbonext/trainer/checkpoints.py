"""``checkpoint-N`` folders: the trained parts, the optimizer/scheduler state and the resolved config.

Layout of ``<output_dir>/checkpoint-N/``::

    pose_guider/                      PoseGuider.save_pretrained (safetensors)
    unet_trainable.safetensors        the main UNet's trainable parameters (names as in unet.state_dict())
    reference_unet/                   only when the ReferenceNet trains
    config.yaml                       the resolved TrainConfig
    trainer_state.json                {"global_step": N}
    optimizer.bin, scheduler.bin, random_states_0.pkl   accelerate's save_state (model weights skipped)

A run starts from the components named in its config (base, motion adapter, ...), then from
``init_pipeline`` (an exported pipeline folder's weights) or ``init_checkpoint`` (an earlier run's
trained parts): :func:`load_init`, applied again on resume and export, as the checkpoints hold only
the parts that train.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from turbonext.loaders.hub import MissingWeightsError, resolve_pretrained_path
from turbonext.models.pose_guider import PoseGuider
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.trainer.config import TrainConfig, load_config
from turbonext.trainer.trainable import load_unet_params, trainable_unet_state_dict


logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"
UNET_WEIGHTS = "unet_trainable.safetensors"
CONFIG_NAME = "config.yaml"
STATE_NAME = "trainer_state.json"
PIPELINE_PARTS = ("unet", "reference_unet", "pose_guider")  # the components init_pipeline loads
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"  # diffusers' name; sharded: + ".index.json"
REFERENCE_BRANCH = "reference_zero_conv."  # the pose guider's optional reference-pose branch


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(step, folder), ...]`` of the ``checkpoint-N`` folders in ``output_dir``, oldest first."""
    out = Path(output_dir)
    found = []
    if out.is_dir():
        for p in out.iterdir():
            m = re.fullmatch(rf"{PREFIX}(\d+)", p.name)
            if m and p.is_dir():
                found.append((int(m.group(1)), p))
    return sorted(found)


def resolve_resume(output_dir: str | Path, resume: str | None) -> Path | None:
    """The checkpoint folder to resume from: ``"latest"`` (None when there is none yet) or a path."""
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            logger.warning("resume_from_checkpoint=latest: no checkpoint in %s yet, starting from scratch.", output_dir)
            return None
        return found[-1][1]
    path = Path(resume)
    if not path.is_dir():
        path = Path(output_dir) / resume
    if not (path / STATE_NAME).is_file():
        raise ValueError(f"resume_from_checkpoint={resume!r}: {path} is not a checkpoint folder (no {STATE_NAME}).")
    return path


def prune_checkpoints(output_dir: str | Path, limit: int | None) -> list[Path]:
    """Delete the oldest checkpoints so that ``limit - 1`` remain (room for the next); returns those removed."""
    if limit is None:
        return []
    found = list_checkpoints(output_dir)
    removed = [p for _, p in found[: max(0, len(found) - limit + 1)]]
    for p in removed:
        logger.info("checkpoints_total_limit=%d: removing %s", limit, p)
        shutil.rmtree(p)
    return removed


def save_trained_parts(folder: str | Path, pipe: TurboNextPipeline, cfg: TrainConfig, global_step: int) -> None:
    """Write the trainable weights, the config and the step counter to ``folder`` (safetensors only)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.pose_guider.save_pretrained(folder / "pose_guider", safe_serialization=True)
    save_file(trainable_unet_state_dict(pipe.unet), str(folder / UNET_WEIGHTS))
    if cfg.train_reference_unet:
        pipe.reference_unet.save_pretrained(folder / "reference_unet", safe_serialization=True)
    cfg.save(folder / CONFIG_NAME)
    (folder / STATE_NAME).write_text(json.dumps({"global_step": global_step}) + "\n")


def load_trained_parts(folder: str | Path, pipe: TurboNextPipeline) -> int:
    """Load a checkpoint's trained weights into ``pipe`` in place (same module objects); returns its step."""
    folder = Path(folder)
    guider = PoseGuider.from_pretrained(folder / "pose_guider", use_safetensors=True)
    if guider.reads_reference_pose and not pipe.pose_guider.reads_reference_pose:
        raise ValueError(f"{folder} was trained with reference_pose: true; set reference_pose: true to load it.")
    if pipe.pose_guider.reads_reference_pose and not guider.reads_reference_pose:
        guider = PoseGuider.with_reference_features(guider)  # its new reference branch starts at zero
    pipe.pose_guider.load_state_dict(guider.state_dict())
    load_unet_params(pipe.unet, load_file(str(folder / UNET_WEIGHTS)))
    if (folder / "reference_unet").is_dir():
        from diffusers import UNet2DConditionModel

        ref = UNet2DConditionModel.from_pretrained(folder / "reference_unet", use_safetensors=True)
        pipe.reference_unet.load_state_dict(ref.state_dict())
    return int(json.loads((folder / STATE_NAME).read_text())["global_step"])


def load_init(cfg: TrainConfig, pipe: TurboNextPipeline) -> None:
    """Apply the run's starting weights to a freshly built pipe: ``cfg.init_pipeline`` or ``cfg.init_checkpoint``
    (mutually exclusive; nothing when neither is set)."""
    if cfg.init_pipeline is not None:
        load_init_pipeline(cfg.init_pipeline, pipe)
    load_init_checkpoint(cfg, pipe)


def load_init_checkpoint(cfg: TrainConfig, pipe: TurboNextPipeline) -> None:
    """Apply ``cfg.init_checkpoint`` (and, recursively, what it started from) to a freshly built pipe."""
    if cfg.init_checkpoint is None:
        return
    folder = Path(cfg.init_checkpoint)
    if not (folder / STATE_NAME).is_file():
        raise ValueError(f"init_checkpoint={cfg.init_checkpoint!r} is not a checkpoint folder (no {STATE_NAME}).")
    load_init(load_config(folder / CONFIG_NAME), pipe)  # e.g. a ReferenceNet trained two stages ago
    load_trained_parts(folder, pipe)


def read_component_weights(folder: str | Path, component: str) -> dict[str, torch.Tensor]:
    """The weights of ``folder/component`` as saved by ``save_pretrained`` (safetensors, one file or sharded)."""
    sub = Path(folder) / component
    if (sub / WEIGHTS_NAME).is_file():
        return load_file(str(sub / WEIGHTS_NAME))
    index = sub / f"{WEIGHTS_NAME}.index.json"
    if index.is_file():
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(load_file(str(sub / shard)))
        return state
    raise ValueError(f"{sub} has no {WEIGHTS_NAME} (nor a sharded {index.name}): init_pipeline reads the "
                     "safetensors weights a TurboNextPipeline.save_pretrained / training/export.py writes.")


def _check_same_weights(source: str, component: str, own: dict[str, torch.Tensor],
                        loaded: dict[str, torch.Tensor]) -> None:
    """Raise a ``ValueError`` naming ``component`` and its first mismatching keys unless keys and shapes agree."""
    missing = sorted(set(own) - set(loaded))
    unexpected = sorted(set(loaded) - set(own))
    shapes = [f"{k} {tuple(loaded[k].shape)} != {tuple(own[k].shape)}" for k in sorted(set(own) & set(loaded))
              if loaded[k].shape != own[k].shape]
    problems = [f"{what} ({len(keys)}): {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
                for what, keys in (("shape mismatches, exported != trainer's", shapes),
                                   ("keys the export lacks", missing), ("keys the trainer's model lacks", unexpected))
                if keys]
    if problems:
        raise ValueError(f"init_pipeline={source!r}: its {component} does not match the {component} built from the "
                         f"config's base/motion_adapter (a different architecture?); " + "; ".join(problems))


def load_init_pipeline(source: str, pipe: TurboNextPipeline) -> None:
    """Load an exported pipeline folder's trained components (``unet``: spatial and motion-module weights,
    ``reference_unet``, ``pose_guider``) into ``pipe`` in place, strictly: same keys and shapes, else a
    ``ValueError`` naming the component and its first mismatching keys. Weights are read with safetensors
    and cast to ``pipe``'s dtypes (an fp16 export loads into fp32 training weights).

    The pose guider's reference-pose branch: an export without it (``--drop-reference-pose``) into a run
    with ``reference_pose: true`` gets a fresh zero-initialised branch (it changes nothing until trained,
    as when a checkpoint without it is continued); an export with it into a run without it is an error.
    Everything else (VAE, text encoder, scheduler) stays the config's base components.
    """
    try:
        folder = Path(resolve_pretrained_path(source))
    except MissingWeightsError as err:
        raise ValueError(f"init_pipeline={source!r}: {err}") from err
    if not (folder / "model_index.json").is_file():
        raise ValueError(f"init_pipeline={source!r} is not a pipeline folder (no model_index.json in {folder}); "
                         "pass what training/export.py or TurboNextPipeline.save_pretrained wrote.")
    for component in PIPELINE_PARTS:
        module: nn.Module = getattr(pipe, component)
        own, loaded = module.state_dict(), read_component_weights(folder, component)
        if component == "pose_guider":
            has_branch = any(k.startswith(REFERENCE_BRANCH) for k in loaded)
            if has_branch and not pipe.pose_guider.reads_reference_pose:
                raise ValueError(f"init_pipeline={source!r}: its pose_guider has a reference-pose branch; set "
                                 "reference_pose: true to keep it (or export the model with --drop-reference-pose).")
            if pipe.pose_guider.reads_reference_pose and not has_branch:  # a fresh branch, at zero
                loaded.update({k: torch.zeros_like(v) for k, v in own.items() if k.startswith(REFERENCE_BRANCH)})
        _check_same_weights(source, component, own, loaded)
        module.load_state_dict(loaded, strict=True)  # copies into the existing parameters, casting the dtype
    logger.info("init_pipeline: loaded %s from %s", ", ".join(PIPELINE_PARTS), folder)


def skip_model_weights(models: list, weights: list, output_dir: str) -> None:
    """accelerate save-state hook: the trained parts are saved by :func:`save_trained_parts` instead."""
    weights.clear()


def skip_model_loading(models: list, input_dir: str) -> None:
    """accelerate load-state hook: the trained parts are loaded by :func:`load_trained_parts` instead."""
    models.clear()
