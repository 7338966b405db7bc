"""Export a training checkpoint as a complete TurboNextPipeline folder (``training/export.py``).

The frozen parts come from the components named in the checkpoint's ``config.yaml`` (base, motion
adapter, TAESD), the trained parts from the checkpoint; the result is written with
``save_pretrained`` (safetensors) and loads with ``TurboNextPipeline.from_pretrained(OUT_DIR)``.
Optionally LCM-LoRA is fused into the exported UNet for 4-step inference, the scheduler is switched to
``LCMScheduler`` (``scheduler="lcm"``, as for the embedded demo model) and the weights are stored in
half precision (``dtype="fp16"``; ``from_pretrained`` loads them back in fp32 on a CPU).
``drop_reference_pose`` removes a pose guider's reference branch (``reference_pose: true`` runs) when
the eval's "reference pose zeroed" ablation shows it carries nothing: the exported model then renders
exactly that ablation and needs no reference pose at inference.
``stream_schedule`` sets the UNet config's ``stream_schedule`` ("uniform" or "staggered"), which tells a
:class:`~turbonext.StreamSession` whether the model was trained on the stream's staircase of noise
levels; "auto" (the default) says "staggered" exactly when the checkpoint's run had ``stream_layout`` > 0.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from turbonext.loaders.hub import is_repo_id
from turbonext.loaders.publish import CARD_NAME, push_or_explain, training_summary, write_card
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.unet_motion import STREAM_SCHEDULES
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.trainer import checkpoints
from turbonext.trainer.config import load_config
from turbonext.trainer.trainable import build_pipeline


logger = logging.getLogger(__name__)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SCHEDULERS = ("base", "lcm")
EXPORT_STREAM_SCHEDULES = ("auto",) + STREAM_SCHEDULES


def resolve_stream_schedule(cfg, stream_schedule: str = "auto") -> str:
    """The UNet's ``stream_schedule`` for a checkpoint of the run ``cfg``: "auto" -> "staggered" iff it trained
    with ``stream_layout`` > 0 (that run itself; one continuing a staggered run with ``stream_layout: 0``
    says "uniform"), else "uniform"; "uniform"/"staggered" as given."""
    if stream_schedule not in EXPORT_STREAM_SCHEDULES:
        raise ValueError(f"stream_schedule must be one of {EXPORT_STREAM_SCHEDULES}; got {stream_schedule!r}.")
    if stream_schedule == "auto":
        return "staggered" if cfg.stream_layout > 0 else "uniform"
    return stream_schedule


def export_pipeline(checkpoint: str | Path, out_dir: str | Path, lcm_lora: str | None = None,
                    lcm_lora_scale: float = 1.0, overrides: list[str] | tuple[str, ...] = (),
                    scheduler: str = "base", dtype: str = "fp32", drop_reference_pose: bool = False,
                    repo_id: str | None = None, license: str | None = None,
                    stream_schedule: str = "auto") -> TurboNextPipeline:
    """Assemble base components + a checkpoint's trained parts and ``save_pretrained`` to ``out_dir``,
    with a model card (``README.md``, :mod:`turbonext.loaders.publish`) saying what it was built from.

    Args:
        checkpoint: a ``checkpoint-N`` folder written by training.
        out_dir: the pipeline folder to write.
        lcm_lora: an LCM-LoRA repo or folder to fuse (switches the scheduler to LCM); None keeps the
            base scheduler.
        overrides: ``key=value`` changes to the saved config, e.g. ``["base=/local/sd15"]`` when the
            components moved since training.
        scheduler: "base" keeps the base's scheduler (LCM when ``lcm_lora`` is fused); "lcm" saves an
            ``LCMScheduler`` built from the base scheduler's config (few-step sampling).
        dtype: "fp32", "fp16" or "bf16": the precision the weights are stored in.
        drop_reference_pose: export the pose guider without its reference branch (if it has one).
        repo_id: the Hub repo it will be pushed to (named in the card's usage snippet), if any.
        license: a Hub license id for the card.
        stream_schedule: the UNet config's ``stream_schedule``: "auto" (staggered iff the run trained with
            ``stream_layout`` > 0), "uniform" or "staggered".
    """
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}; got {scheduler!r}.")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}; got {dtype!r}.")
    folder = Path(checkpoint)
    config_path = folder / checkpoints.CONFIG_NAME
    if not config_path.is_file() or not (folder / checkpoints.UNET_WEIGHTS).is_file():
        raise ValueError(f"{folder} is not a training checkpoint (needs {checkpoints.CONFIG_NAME} and "
                         f"{checkpoints.UNET_WEIGHTS}); pass a <output_dir>/checkpoint-N folder.")
    # the components the run started from; the trained parts are loaded from the checkpoint below
    cfg = load_config(config_path, list(overrides) + ["resume_from_checkpoint=null"])
    schedule = resolve_stream_schedule(cfg, stream_schedule)
    pipe = build_pipeline(cfg)
    checkpoints.load_init(cfg, pipe)
    step = checkpoints.load_trained_parts(folder, pipe)
    if drop_reference_pose and pipe.pose_guider.reads_reference_pose:
        pipe.register_modules(pose_guider=PoseGuider.without_reference_features(pipe.pose_guider))
        logger.info("dropped the pose guider's reference branch: the export needs no reference pose")
    if lcm_lora is not None:
        pipe.fuse_lcm_lora(lcm_lora, scale=lcm_lora_scale)
    if scheduler == "lcm":
        pipe.use_lcm_scheduler()
    if dtype != "fp32":
        pipe.to(DTYPES[dtype])
    pipe.unet.register_to_config(stream_schedule=schedule)  # read by StreamSession (how to lay out its window)
    out = Path(out_dir)
    pipe.save_pretrained(out, safe_serialization=True)
    training = training_summary(cfg, step, folder, lcm_lora=lcm_lora, scheduler=scheduler, dtype=dtype,
                                reference_pose=pipe.reads_reference_pose)
    if not write_card(out, repo_id, eval_results=[], license=license, training=training):  # a new model: no eval yet
        logger.warning("kept %s: it was edited by hand", out / CARD_NAME)
    logger.info("exported %s (step %d) to %s (stream_schedule=%s)", folder, step, out, schedule)
    return pipe


def cli_main(argv: list[str] | None = None) -> int:
    """``python training/export.py CHECKPOINT OUT_DIR [--lcm-lora REPO] [key=value ...]``."""
    parser = argparse.ArgumentParser(description="Export a training checkpoint as a TurboNextPipeline folder.")
    parser.add_argument("checkpoint", help="a <output_dir>/checkpoint-N folder")
    parser.add_argument("out_dir", help="the pipeline folder to write")
    parser.add_argument("--lcm-lora", default=None, help="fuse this LCM-LoRA (repo id or folder) for 4-step inference")
    parser.add_argument("--lcm-lora-scale", type=float, default=1.0)
    parser.add_argument("--scheduler", choices=SCHEDULERS, default="base",
                        help="'lcm' saves an LCMScheduler (few-step sampling) instead of the base's scheduler")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="precision of the stored weights")
    parser.add_argument("--drop-reference-pose", action="store_true",
                        help="export without the pose guider's reference branch (reference_pose runs), e.g. when "
                             "the 'reference pose zeroed' ablation shows it carries nothing")
    parser.add_argument("--stream-schedule", choices=EXPORT_STREAM_SCHEDULES, default="auto",
                        help="the UNet config's stream_schedule, read by live streams: 'staggered' = trained on the "
                             "stream's staircase of noise levels; 'auto' (default): staggered iff the checkpoint's "
                             "run had stream_layout > 0")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO_ID",
                        help="then upload the folder to this Hub model repo (owner/name; created if missing)")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    parser.add_argument("--license", default=None, help="a Hub license id for the model card")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the checkpoint's config (e.g. base=...)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.push_to_hub and not is_repo_id(args.push_to_hub):
            raise ValueError(f"--push-to-hub {args.push_to_hub!r} is not a Hub repo id: use the form 'owner/name'.")
        export_pipeline(args.checkpoint, args.out_dir, args.lcm_lora, args.lcm_lora_scale, args.overrides,
                        scheduler=args.scheduler, dtype=args.dtype, drop_reference_pose=args.drop_reference_pose,
                        repo_id=args.push_to_hub, license=args.license, stream_schedule=args.stream_schedule)
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {args.out_dir}; load it with TurboNextPipeline.from_pretrained({str(args.out_dir)!r})")
    if args.push_to_hub:
        return push_or_explain(args.out_dir, args.push_to_hub, private=args.private)
    return 0
