"""Publishing a pipeline folder on the Hugging Face Hub: its model card and the upload.

``python training/export.py CHECKPOINT OUT_DIR --push-to-hub you/my-turbonext`` writes the card while
exporting and uploads the folder; ``turbonext push FOLDER you/my-turbonext`` uploads a folder exported
earlier (a failed upload is retried that way: the exported folder stays on disk). Only what loading
reads is uploaded (configs, tokenizer files, safetensors, the card), never pickles.
``TurboNextPipeline.from_pretrained("you/my-turbonext")`` then downloads and loads it.

The card (``README.md``) says what the model is built from, how it was trained and how to run it,
with Hub metadata: ``library_name: turbonext`` (diffusers' generic loader cannot load it: the UNet and
pose guider classes live in this package), ``pipeline_tag: image-to-video``, ``base_model`` when the
base is a Hub repo.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData

from turbonext.loaders.hub import ALLOW_PATTERNS, is_repo_id


CARD_NAME = "README.md"
GENERATED_MARK = ("<!-- written by turbonext: `turbonext push` rewrites this card (keeping its training facts, "
                  "evaluation and licence); delete this line to keep your own edits -->")
TAGS = ["turbonext", "pose-transfer", "video-generation", "animatediff", "reference-net", "stable-diffusion"]
EVAL_METRICS = (("psnr", "PSNR dB", ".2f"), ("ssim_box", "SSIM (figure box)", ".3f"), ("iou", "figure IoU", ".3f"),
                ("color_error", "colour error per figure pixel", ".3f"), ("flicker", "flicker (jitter, >= 0)", ".3f"))


def _hub_id(value) -> str | None:
    """``value`` if it names a Hub repo (owner/name, not a folder on this machine), else None."""
    text = str(value) if value else ""
    return text if is_repo_id(text) and not Path(text).exists() else None


def compact_eval(result: dict) -> dict:
    """What a card keeps of a ``turbonext eval --json`` result: split, dataset name, sequences, settings,
    metrics (a compacted result passes through unchanged)."""
    try:
        data = result.get("data") or (Path(str(result["dataset"])).name if result.get("dataset") else None)
        return {"split": result["split"], "data": data,
                "num_sequences": result.get("num_sequences"),
                "settings": {k: result.get("settings", {}).get(k) for k in ("num_inference_steps", "streaming")},
                "metrics": {key: result["metrics"].get(key) for key, _, _ in EVAL_METRICS}}
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"not a `turbonext eval` result (missing {err}): pass the JSON that `turbonext eval "
                         "--json` writes.") from err


def _eval_table(eval_results: list[dict]) -> list[str]:
    rows = ["| data | split | sequences | steps | streaming | " + " | ".join(name for _, name, _ in EVAL_METRICS) + " |",
            "|---|---|---|---|---|" + "---|" * len(EVAL_METRICS)]
    for result in eval_results:
        metrics, settings = result["metrics"], result["settings"]
        cells = [format(metrics[key], spec) if metrics.get(key) is not None else "-" for key, _, spec in EVAL_METRICS]
        rows.append(f"| {result.get('data') or '-'} | {result['split']} | {result['num_sequences']} | {settings['num_inference_steps']} | "
                    f"{settings['streaming']} | " + " | ".join(cells) + " |")
    return rows


def model_card(model_index: dict, repo_id: str | None = None, training: dict | None = None,
               eval_results: list[dict] = (), license: str | None = None) -> ModelCard:
    """The card of a pipeline folder.

    Args:
        model_index: the folder's ``model_index.json`` (names the components and the scheduler).
        repo_id: where it will live (used in the usage snippet); None for a local folder.
        training: what :func:`training_summary` returns for the checkpoint it was exported from.
        eval_results: results written by ``turbonext eval --json`` (one table row each).
        license: a Hub license id; None leaves it out (it follows the base model's and your data's terms).
    """
    training = training or {}
    name = repo_id or training.get("name") or "turbonext model"
    base = training.get("base")
    eval_rows = [compact_eval(r) for r in eval_results]
    data = ModelCardData(library_name="turbonext", pipeline_tag="image-to-video", tags=list(TAGS),
                         base_model=_hub_id(base), license=license, turbonext_training=training or None,
                         turbonext_eval=eval_rows or None)
    scheduler = (model_index.get("scheduler") or [None, "?"])[1]
    uses_lcm = scheduler == "LCMScheduler"
    load = repo_id or "path/to/this/folder"
    steps = 4 if uses_lcm else 25
    lines = [f"---\n{data.to_yaml()}\n---", GENERATED_MARK, "", f"# {name}", "",
             "A [turbonext](https://pypi.org/project/turbonext/) pose-transfer pipeline: give it one photo of a "
             "person and a pose sequence (skeleton maps, a driving video, or a live webcam) and it renders that "
             "person in those poses. Stable Diffusion 1.5-style UNet with AnimateDiff motion modules, a "
             "ReferenceNet whose attention keys/values are computed once per photo, and a pose guider.", "",
             "## Use it", "", "```bash", "pip install turbonext", "```", "", "```python",
             "from turbonext import TurboNextPipeline", "",
             f"pipe = TurboNextPipeline.from_pretrained({json.dumps(load)}).to(\"cuda\")  # or \"cpu\"",
             f"frames = pipe(reference_image=photo, pose_images=pose_maps, num_inference_steps={steps}).frames[0]",
             "", "session = pipe.stream(reference_image=photo)  # live: one pose frame in, ready frames out",
             "for pose in pose_maps:", "    for frame in session.step(pose):", "        ...", "```", "",
             f"App: `python app.py --model {load}` (turbonext's Gradio app: upload a video or use the webcam).", ""]
    if training.get("reference_pose"):
        lines += ["This model also reads the **reference photo's pose**: pass `reference_pose=` (its pose map) "
                  "with each reference image, or let the app / `turbonext generate` detect it.", ""]
    lines += ["## What it is made of", "", "| component | class |", "|---|---|"]
    for key, value in model_index.items():
        if not key.startswith("_") and isinstance(value, list) and value[1] is not None:
            lines.append(f"| {key} | {value[0]}.{value[1]} |")
    lines.append("")
    if training:
        lines += ["## Training", "", "| setting | value |", "|---|---|"]
        for key, value in training.items():
            if key != "name" and value not in (None, ""):
                lines.append(f"| {key} | `{value}` |")
        lines.append("")
    if eval_rows:
        lines += ["## Evaluation", "", "`turbonext eval` on held-out sequences (metrics: `turbonext.evaluation.metrics`). "
                  "Higher is better for PSNR, SSIM and IoU, lower for colour error; flicker is the frame-to-frame "
                  "change beyond the ground truth's (0: as steady as the truth).", ""]
        lines += _eval_table(eval_rows) + [""]
    lines += ["## Limitations", "",
              "It renders what its training videos taught it: people, clothes and motions unlike them come out "
              "worse. Use it only with photos of people who agreed to it. Its licence follows the base "
              "model's and the training data's terms.", ""]
    return ModelCard("\n".join(lines))


def training_summary(cfg, step: int, checkpoint: str | Path, lcm_lora: str | None = None,
                     scheduler: str = "base", dtype: str = "fp32", reference_pose: bool | None = None) -> dict:
    """The training facts a card lists, from a checkpoint's :class:`~turbonext.trainer.config.TrainConfig`
    and the export settings (``reference_pose``: whether the exported model reads it; default: the config's).
    Local folders are named by their last part only (no paths of your machine go to the Hub)."""
    def public(value):
        return value if value is None or _hub_id(value) else Path(str(value)).name

    facts = {
        "name": Path(str(cfg.output_dir)).name, "checkpoint": f"{Path(str(checkpoint)).name} (step {step})",
        "base": public(cfg.base), "motion_adapter": public(cfg.motion_adapter), "tiny_vae": public(cfg.tiny_vae),
        "lcm_lora": public(lcm_lora), "scheduler": "LCMScheduler" if lcm_lora or scheduler == "lcm" else scheduler,
        "stored_dtype": dtype, "dataset": public(cfg.dataset_dir), "resolution": cfg.resolution,
        "num_frames": cfg.num_frames, "train_batch_size": cfg.train_batch_size,
        "learning_rate": cfg.learning_rate, "max_train_steps": cfg.max_train_steps,
        "mixed_precision": cfg.mixed_precision,
        "reference_pose": (cfg.reference_pose if reference_pose is None else reference_pose) or None,
        "noise_offset": cfg.noise_offset or None, "per_frame_timesteps": cfg.per_frame_timesteps or None,
        "stream_layout": cfg.stream_layout or None, "init_pipeline": public(cfg.init_pipeline),
    }
    return {key: value for key, value in facts.items() if value is not None}


def read_model_index(folder: str | Path) -> dict:
    path = Path(folder) / "model_index.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not a pipeline folder (no model_index.json): export a checkpoint first "
                         "(python training/export.py CHECKPOINT OUT_DIR) or pass the folder it wrote.")
    return json.loads(path.read_text())


def load_eval_results(paths) -> list[dict] | None:
    """``turbonext eval --json`` files, compacted for a card; None when ``paths`` is None."""
    if paths is None:
        return None
    results = []
    for path in paths:
        try:
            results.append(compact_eval(json.loads(Path(path).read_text())))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read the eval result {path}: {err}") from err
    return results


def write_card(folder: str | Path, repo_id: str | None = None, eval_results: list[dict] | None = None,
               license: str | None = None, training: dict | None = None) -> bool:
    """(Re)write ``folder``'s card for ``repo_id``; returns False (and leaves the file) when the card was
    edited by hand (its :data:`GENERATED_MARK` line removed). A card turbonext wrote keeps its training
    facts, evaluation and licence unless new ones are given (``training``: :func:`training_summary`)."""
    folder = Path(folder)
    model_index = read_model_index(folder)
    path = folder / CARD_NAME
    old_training, old_eval, old_license = None, [], None
    if path.is_file():
        if GENERATED_MARK not in path.read_text():
            return False
        old = ModelCard.load(path).data.to_dict()
        old_training, old_eval, old_license = old.get("turbonext_training"), old.get("turbonext_eval") or [], old.get("license")
    model_card(model_index, repo_id=repo_id, training=training or old_training,
               eval_results=old_eval if eval_results is None else eval_results,
               license=license or old_license).save(path)
    return True


def upload_files(folder: str | Path) -> list[str]:
    """The files of ``folder`` an upload sends (relative POSIX paths): those :data:`ALLOW_PATTERNS` admit,
    matched the way ``HfApi.upload_folder`` matches them."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(files, allow_patterns=ALLOW_PATTERNS))


def push_folder(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str | None = None) -> str:
    """Upload a pipeline folder to the Hub model repo ``repo_id`` (created if missing); returns the
    commit URL. Only :data:`ALLOW_PATTERNS` files go up (configs, tokenizer files, safetensors, the card)."""
    read_model_index(folder)
    if not is_repo_id(repo_id):
        raise ValueError(f"{repo_id!r} is not a Hub repo id: use the form 'owner/name'.")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=True if private else None, exist_ok=True)  # None: your default
    commit = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                               allow_patterns=ALLOW_PATTERNS, commit_message=commit_message or "Upload turbonext pipeline")
    return str(getattr(commit, "commit_url", commit))


def push_or_explain(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                    commit_message: str | None = None) -> int:
    """:func:`push_folder` for command lines: prints where it went, or why not and how to retry (exit 1)."""
    try:
        url = push_folder(folder, repo_id, private=private, token=token, commit_message=commit_message)
    except ValueError:  # the user's input (not a pipeline folder, not a repo id): the caller says so
        raise
    except Exception as err:  # network, login, permissions: huggingface_hub raises many kinds; none is hidden
        print(f"Could not push {folder} to the Hub repo {repo_id}: {type(err).__name__}: {err}\n"
              f"The folder is unchanged on disk. Log in (`hf auth login`) or pass --token, then retry with:\n"
              f"  turbonext push {folder} {repo_id}", file=sys.stderr)
        return 1
    print(f"pushed {folder} to https://huggingface.co/{repo_id} ({url}); load it with "
          f"TurboNextPipeline.from_pretrained({repo_id!r})")
    return 0
