"""Long streams against the offline clip, frame index by frame index (``turbonext eval --streaming``).

A stream can look right for its first window and then decay (the first demo model did after ~8 frames),
so scoring 8-frame clips says nothing about it. :func:`evaluate_long_stream` renders each scene twice on
the same inputs, once through ``pipe.stream`` frame by frame and once as one offline clip (``pipe(...)``,
context windows), and scores every frame against the truth. The result keeps one curve per metric and
frame index (mean over scenes) for each, and :func:`plot_long_stream` draws them.

Metrics per frame: silhouette IoU, colour error inside the figure (per pixel, 0-1 RGB), background
brightness (mean 0-255 where the truth is black: a decaying stream fills the frame with noise) and PSNR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from turbonext.evaluation import metrics
from turbonext.evaluation.held_out import reference_scene
from turbonext.evaluation.metrics import seam_ratio
from turbonext.pipelines.context_windows import context_windows
from turbonext.synthetic.dataset import SPLITS, load_scene, load_split


FRAME_METRICS = {  # name: (function(pred, gt), label for plots and tables, higher is better)
    "iou": (metrics.silhouette_iou, "silhouette IoU", True),
    "color_error": (metrics.figure_color_error, "colour error in the figure (0-1)", False),
    "background": (metrics.background_brightness, "background brightness (0-255)", False),
    "psnr": (metrics.psnr, "PSNR (dB)", True),
}
RENDERINGS = ("stream", "offline")


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(int(seed))


def _render_stream(pipe: Any, reference: Image.Image, poses: Sequence[Image.Image], steps: int, seed: int,
                   stream_kwargs: dict) -> tuple[list[Image.Image], Any, list[int]]:
    """The stream's frames, its session (whose layout says what ``schedule=None`` resolved to) and the joins: the
    index of the first frame of every group the stream emitted together after the first."""
    session = pipe.stream(reference_image=reference, num_inference_steps=steps, generator=_generator(seed),
                          **stream_kwargs)
    frames, joins = [], []
    for group in [session.step(pose) for pose in poses] + [session.flush()]:
        if group and frames:
            joins.append(len(frames))
        frames += group
    return frames, session, joins


def _render_offline(pipe: Any, reference: Image.Image, poses: Sequence[Image.Image], steps: int,
                    seed: int) -> list[Image.Image]:
    return list(pipe(reference_image=reference, pose_images=list(poses), num_inference_steps=steps,
                     generator=_generator(seed), output_type="pil").frames[0])


def score_frames(pred: Sequence[Image.Image], truth: Sequence[Image.Image]) -> dict[str, list[float]]:
    """Every :data:`FRAME_METRICS` entry for every frame: {metric: [value per frame]}."""
    if len(pred) != len(truth):
        raise ValueError(f"the model returned {len(pred)} frames for {len(truth)} poses.")
    return {name: [float(fn(p.convert("RGB"), t)) for p, t in zip(pred, truth)]
            for name, (fn, _, _) in FRAME_METRICS.items()}


def evaluate_long_stream(
    pipe: Any,
    dataset_dir: str | Path,
    split: str = "test_identity",
    num_frames: int | None = 128,
    num_inference_steps: int = 4,
    seed: int = 0,
    window: int = 16,
    frames_per_level: int | None = None,
    schedule: str | None = None,
    max_identities: int | None = None,
    scenes_per_identity: int | None = None,
    late_from: int | None = None,
    progress: bool = True,
) -> dict:
    """Stream and offline clip of every chosen scene, scored per frame index.

    Args:
        pipe: a :class:`~turbonext.TurboNextPipeline` (anything with its ``__call__`` and ``stream``).
        dataset_dir: a dataset written by ``turbonext synthetic --frames N`` with N >= ``num_frames``.
        split: which scenes (:data:`~turbonext.synthetic.SPLITS`).
        num_frames: frames per scene, all scored (None: every frame of the shortest chosen scene).
        window / frames_per_level / schedule: the stream's settings (:meth:`TurboNextPipeline.stream`).
        max_identities / scenes_per_identity: the first this many identities of the split, and scenes of each.
        late_from: the first frame of the "late" summary (default: ``num_frames // 2``), where a stream
            that drifts has drifted.
        progress: a tqdm bar over scenes.

    The reference of a scene is the first frame of another clip of the same identity
    (:func:`~turbonext.evaluation.held_out.reference_scene`).

    Returns:
        {"settings", "scenes": [names], "per_frame": {rendering: {metric: [mean over scenes per frame]}},
        "per_scene": [{scene, reference, rendering: {metric: [per frame]}}], "summary": {rendering: {"all":
        {metric: mean}, "late": {metric: mean over frames >= late_from}, "max_background": float}},
        "late_ratio": {metric: stream late / offline late}}.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    if num_frames is not None and num_frames < 2:
        raise ValueError(f"num_frames must be >= 2; got {num_frames}.")
    if not hasattr(pipe, "stream"):
        raise ValueError(f"a long-stream evaluation needs a model with .stream(); {type(pipe).__name__} has none.")
    root = Path(dataset_dir)
    index = load_split(root)
    scenes = _choose_scenes(list(index.get(split, [])), max_identities, scenes_per_identity)
    if not scenes:
        raise ValueError(f"split {split!r} of {root} has no scenes; write it with `turbonext synthetic --out {root}`.")
    all_scenes = [s for name in SPLITS for s in index.get(name, [])]
    if num_frames is None:
        num_frames = min(len(list((root / scene / "poses").iterdir())) for scene in scenes)
    late_from = num_frames // 2 if late_from is None else late_from
    if not 0 <= late_from < num_frames:
        raise ValueError(f"late_from must be in [0, {num_frames}); got {late_from}.")
    stream_kwargs = {"window": window, "frames_per_level": frames_per_level, "schedule": schedule}
    session = None
    per_scene = []
    for scene in tqdm(scenes, desc=f"long stream {split}", disable=not progress):
        truth, poses, _ = load_scene(root / scene, num_frames)
        if len(poses) < num_frames:
            raise ValueError(f"{scene} has {len(poses)} frames, fewer than num_frames={num_frames}; write the "
                             f"dataset with `turbonext synthetic --frames {num_frames}`.")
        ref_name = reference_scene(scene, all_scenes)
        reference = load_scene(root / ref_name, num_frames=1)[0][0]
        streamed, session, stream_joins = _render_stream(pipe, reference, poses, num_inference_steps, seed,
                                                         stream_kwargs)
        rendered = {
            "stream": streamed,
            "offline": _render_offline(pipe, reference, poses, num_inference_steps, seed),
        }
        joins = {"stream": stream_joins,  # each new chunk the stream emitted
                 "offline": offline_joins(num_frames)}  # where a context window starts or ends
        per_scene.append({"scene": scene, "reference": f"{ref_name}#1",
                          **{name: score_frames(frames, truth) for name, frames in rendered.items()},
                          "seam": {name: seam_ratio(frames, joins[name]) for name, frames in rendered.items()}})

    per_frame = {r: {m: np.mean([s[r][m] for s in per_scene], axis=0).tolist() for m in FRAME_METRICS}
                 for r in RENDERINGS}
    summary = {r: {"all": {m: float(np.mean(v)) for m, v in per_frame[r].items()},
                   "late": {m: float(np.mean(v[late_from:])) for m, v in per_frame[r].items()},
                   "max_background": float(max(max(s[r]["background"]) for s in per_scene)),
                   "seam": float(np.nanmean([s["seam"][r] for s in per_scene]))}
               for r in RENDERINGS}
    late_ratio = {m: summary["stream"]["late"][m] / summary["offline"]["late"][m]
                  if summary["offline"]["late"][m] else None for m in FRAME_METRICS}
    return {
        "split": split,
        "dataset": str(root),
        "settings": {"num_frames": num_frames, "num_inference_steps": num_inference_steps, "seed": seed,
                     "window": window, "frames_per_level": getattr(session, "per_level", frames_per_level),
                     "schedule": getattr(session, "schedule_name", schedule), "late_from": late_from},
        "scenes": scenes,
        "per_frame": per_frame,
        "per_scene": per_scene,
        "summary": summary,
        "late_ratio": late_ratio,
    }


def offline_joins(num_frames: int, window: int = 16, overlap: int = 4) -> list[int]:
    """The frames where the offline clip's context windows (``pipe(...)``'s defaults) start or end."""
    windows = context_windows(num_frames, window, overlap)
    return sorted({w.start for w in windows[1:]} | {w.stop for w in windows[:-1]})


def _choose_scenes(scenes: list[str], max_identities: int | None, per_identity: int | None) -> list[str]:
    """The scenes of the first ``max_identities`` identities (in name order), ``per_identity`` of each."""
    chosen, by_identity = [], {}
    for scene in sorted(scenes):
        by_identity.setdefault(scene.split("/")[0], []).append(scene)
    for k, identity in enumerate(sorted(by_identity)):
        if max_identities is not None and k >= max_identities:
            break
        chosen += by_identity[identity][:per_identity]
    return chosen


def format_long_stream(result: dict) -> str:
    """A plain-text summary: per metric, stream vs offline over all frames and the late frames."""
    s, late = result["summary"], result["settings"]["late_from"]
    lines = [f"{len(result['scenes'])} scenes x {result['settings']['num_frames']} frames "
             f"(stream: window {result['settings']['window']}, schedule {result['settings']['schedule'] or 'model default'})",
             f"{'metric':<36}{'stream':>10}{'offline':>10}{'stream':>12}{'offline':>10}{'ratio':>8}",
             f"{'':<36}{'all':>10}{'all':>10}{f'>= {late}':>12}{f'>= {late}':>10}{'late':>8}"]
    for name, (_, label, _) in FRAME_METRICS.items():
        ratio = result["late_ratio"][name]
        lines.append(f"{label:<36}{s['stream']['all'][name]:>10.3f}{s['offline']['all'][name]:>10.3f}"
                     f"{s['stream']['late'][name]:>12.3f}{s['offline']['late'][name]:>10.3f}"
                     f"{'-' if ratio is None else f'{ratio:.3f}':>8}")
    lines.append(f"brightest background frame: stream {s['stream']['max_background']:.1f}, "
                 f"offline {s['offline']['max_background']:.1f} (0-255)")
    if "seam" in s["stream"]:
        lines.append(f"seams (change into a join / change elsewhere; 1 = invisible): stream chunks "
                     f"{s['stream']['seam']:.2f}, offline windows {s['offline']['seam']:.2f}")
    return "\n".join(lines)


def plot_long_stream(result: dict, path: str | Path) -> Path:
    """A PNG with one panel per metric: the mean over scenes per frame index, stream and offline."""
    try:
        import matplotlib
    except ImportError as err:  # an optional dependency: `pip install turbonext[eval]`
        raise ImportError("plotting a long-stream evaluation needs matplotlib: pip install 'turbonext[eval]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FRAME_METRICS), figsize=(4.2 * len(FRAME_METRICS), 3.4))
    settings = result["settings"]
    for ax, (name, (_, label, _)) in zip(axes, FRAME_METRICS.items()):
        for rendering, style in zip(RENDERINGS, ("-", "--")):
            values = result["per_frame"][rendering][name]
            ax.plot(range(len(values)), values, style, label=rendering)
        ax.axvline(settings["late_from"], color="grey", lw=0.5)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("frame index")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result['split']}: {len(result['scenes'])} scenes, window {settings['window']}, "
                 f"schedule {settings['schedule'] or 'model default'}, {settings['num_inference_steps']} steps",
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
