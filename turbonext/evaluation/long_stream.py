"""Long streams against the offline clip, frame index by frame index (``turbonext eval --streaming``).

A stream can look right for its first window and then decay (the first demo model did after ~8 frames),
so scoring 8-frame clips says nothing about it. :func:`evaluate_long_stream` renders each scene twice on
the same inputs, once through ``pipe.stream`` frame by frame and once as one offline clip (``pipe(...)``,
context windows), and scores every frame against the truth. The result keeps one curve per metric and
frame index (mean over scenes) for each, and :func:`plot_long_stream` draws them. ``renderings`` can add
the offline clip rendered by chaining windows (``"chain"``: ``pipe(..., long_video="chain")``) or leave
the stream out, to compare the two ways of rendering a long clip.

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
from turbonext.pipelines.context_windows import chained_windows, context_windows
from turbonext.synthetic.dataset import SPLITS, load_scene, load_split


FRAME_METRICS = {  # name: (function(pred, gt), label for plots and tables, higher is better)
    "iou": (metrics.silhouette_iou, "silhouette IoU", True),
    "color_error": (metrics.figure_color_error, "colour error in the figure (0-1)", False),
    "background": (metrics.background_brightness, "background brightness (0-255)", False),
    "psnr": (metrics.psnr, "PSNR (dB)", True),
}
RENDERINGS = ("stream", "offline")  # the default renderings
ALL_RENDERINGS = ("stream", "offline", "chain")  # "chain": the offline clip with long_video="chain"


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
                    seed: int, **kwargs) -> list[Image.Image]:
    """The offline clip; ``kwargs`` (windows, ``long_video``) go to ``pipe(...)``, which gets none when empty."""
    return list(pipe(reference_image=reference, pose_images=list(poses), num_inference_steps=steps,
                     generator=_generator(seed), output_type="pil", **kwargs).frames[0])


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
    renderings: Sequence[str] = RENDERINGS,
    offline_window: int | None = None,
    offline_overlap: int | None = None,
    chain_context: str | None = None,
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
        renderings: which of :data:`ALL_RENDERINGS` to render and score: "stream" (``pipe.stream``), "offline"
            (``pipe(...)``, blended windows) and "chain" (``pipe(..., long_video="chain")``).
        offline_window / offline_overlap: ``window_size`` / ``window_overlap`` of the offline renderings (default:
            the pipeline's, 16 / 4); for "chain" the overlap is the context carried into each window.
        chain_context: the "chain" rendering's ``chain_context`` ("renoise", "clean"; None: the model's own).

    The reference of a scene is the first frame of another clip of the same identity
    (:func:`~turbonext.evaluation.held_out.reference_scene`).

    Returns:
        {"settings", "scenes": [names], "per_frame": {rendering: {metric: [mean over scenes per frame]}},
        "per_scene": [{scene, reference, rendering: {metric: [per frame]}}], "summary": {rendering: {"all":
        {metric: mean}, "late": {metric: mean over frames >= late_from}, "max_background": float}},
        "late_ratio": {metric: stream late / offline late}} (empty without both), "joins": {rendering: [the
        first frame of every new window or chunk after the first, of the first scene]}. The seam of each
        rendering (:func:`~turbonext.evaluation.metrics.seam_ratio`) is in every scene and in the summary.
    """
    renderings = tuple(renderings)
    if not renderings or any(r not in ALL_RENDERINGS for r in renderings) or len(set(renderings)) != len(renderings):
        raise ValueError(f"renderings must be distinct names from {ALL_RENDERINGS}; got {renderings!r}.")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    if num_frames is not None and num_frames < 2:
        raise ValueError(f"num_frames must be >= 2; got {num_frames}.")
    if "stream" in renderings and not hasattr(pipe, "stream"):
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
    windows = {k: v for k, v in (("window_size", offline_window), ("window_overlap", offline_overlap)) if v is not None}
    offline_window = 16 if offline_window is None else offline_window
    offline_overlap = 4 if offline_overlap is None else offline_overlap
    session = first_joins = None
    per_scene = []
    for scene in tqdm(scenes, desc=f"long stream {split}", disable=not progress):
        truth, poses, _ = load_scene(root / scene, num_frames)
        if len(poses) < num_frames:
            raise ValueError(f"{scene} has {len(poses)} frames, fewer than num_frames={num_frames}; write the "
                             f"dataset with `turbonext synthetic --frames {num_frames}`.")
        ref_name = reference_scene(scene, all_scenes)
        reference = load_scene(root / ref_name, num_frames=1)[0][0]
        rendered, joins = {}, {}
        if "stream" in renderings:
            rendered["stream"], session, joins["stream"] = _render_stream(  # joins: each new chunk the stream emitted
                pipe, reference, poses, num_inference_steps, seed, stream_kwargs)
        if "offline" in renderings:
            rendered["offline"] = _render_offline(pipe, reference, poses, num_inference_steps, seed, **windows)
            joins["offline"] = offline_joins(num_frames, offline_window, offline_overlap)  # a window starts or ends
        if "chain" in renderings:
            rendered["chain"] = _render_offline(pipe, reference, poses, num_inference_steps, seed, long_video="chain",
                                                window_size=offline_window, window_overlap=offline_overlap,
                                                chain_context=chain_context)
            joins["chain"] = chain_joins(num_frames, offline_window, offline_overlap)  # each window's first new frame
        per_scene.append({"scene": scene, "reference": f"{ref_name}#1",
                          **{name: score_frames(rendered[name], truth) for name in renderings},
                          "seam": {name: seam_ratio(rendered[name], joins[name]) for name in renderings}})
        first_joins = joins if first_joins is None else first_joins

    per_frame = {r: {m: np.mean([s[r][m] for s in per_scene], axis=0).tolist() for m in FRAME_METRICS}
                 for r in renderings}
    summary = {r: {"all": {m: float(np.mean(v)) for m, v in per_frame[r].items()},
                   "late": {m: float(np.mean(v[late_from:])) for m, v in per_frame[r].items()},
                   "max_background": float(max(max(s[r]["background"]) for s in per_scene)),
                   "seam": _nanmean([s["seam"][r] for s in per_scene])}
               for r in renderings}
    late_ratio = {}
    if "stream" in renderings and "offline" in renderings:
        late_ratio = {m: summary["stream"]["late"][m] / summary["offline"]["late"][m]
                      if summary["offline"]["late"][m] else None for m in FRAME_METRICS}
    return {
        "split": split,
        "dataset": str(root),
        "settings": {"num_frames": num_frames, "num_inference_steps": num_inference_steps, "seed": seed,
                     "window": window, "frames_per_level": getattr(session, "per_level", frames_per_level),
                     "schedule": getattr(session, "schedule_name", schedule), "late_from": late_from,
                     "renderings": list(renderings), "offline_window": offline_window,
                     "offline_overlap": offline_overlap, "chain_context": chain_context},
        "scenes": scenes,
        "per_frame": per_frame,
        "per_scene": per_scene,
        "summary": summary,
        "late_ratio": late_ratio,
        "joins": first_joins,
    }


def offline_joins(num_frames: int, window: int = 16, overlap: int = 4) -> list[int]:
    """The frames where the offline clip's context windows (``pipe(...)``'s defaults) start or end."""
    windows = context_windows(num_frames, window, overlap)
    return sorted({w.start for w in windows[1:]} | {w.stop for w in windows[:-1]})


def _nanmean(values: list[float]) -> float:
    """The mean of the values that are not NaN (NaN, without a warning, when all are)."""
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def chain_joins(num_frames: int, window: int = 16, context: int = 4) -> list[int]:
    """The frames where a chained clip's windows (``pipe(..., long_video="chain")``) start their new frames."""
    return [w.start + c for w, c in chained_windows(num_frames, window, context)[1:]]


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
    """A plain-text summary: per metric, every rendering (stream, offline, chain) over all frames and the late
    frames, the stream's late ratio to the offline clip, the brightest background and the seams."""
    s, late, settings = result["summary"], result["settings"]["late_from"], result["settings"]
    names = [r for r in ALL_RENDERINGS if r in s]
    ratio_column = bool(result.get("late_ratio"))
    windows = f"offline windows {settings.get('offline_window', 16)} / {settings.get('offline_overlap', 4)}"
    stream = (f"stream: window {settings['window']}, schedule {settings['schedule'] or 'model default'}; "
              if "stream" in names else "")
    lines = [f"{len(result['scenes'])} scenes x {settings['num_frames']} frames ({stream}{windows})",
             f"{'metric':<36}" + "".join(f"{r:>10}" for r in names) + "".join(f"{r:>12}" for r in names)
             + (f"{'ratio':>8}" if ratio_column else ""),
             f"{'':<36}" + "".join(f"{'all':>10}" for _ in names) + "".join(f"{f'>= {late}':>12}" for _ in names)
             + (f"{'late':>8}" if ratio_column else "")]
    for name, (_, label, _) in FRAME_METRICS.items():
        line = (f"{label:<36}" + "".join(f"{s[r]['all'][name]:>10.3f}" for r in names)
                + "".join(f"{s[r]['late'][name]:>12.3f}" for r in names))
        if ratio_column:
            ratio = result["late_ratio"][name]
            line += f"{'-' if ratio is None else f'{ratio:.3f}':>8}"
        lines.append(line)
    lines.append("brightest background frame: " + ", ".join(f"{r} {s[r]['max_background']:.1f}" for r in names)
                 + " (0-255)")
    what = {"stream": "stream chunks", "offline": "offline windows", "chain": "chained windows"}
    if all("seam" in s[r] for r in names):
        lines.append("seams (change into a join / change elsewhere; 1 = invisible): "
                     + ", ".join(f"{what[r]} {s[r]['seam']:.2f}" for r in names))
    return "\n".join(lines)


def plot_long_stream(result: dict, path: str | Path) -> Path:
    """A PNG with one panel per metric: the mean over scenes per frame index, one line per rendering."""
    try:
        import matplotlib
    except ImportError as err:  # an optional dependency: `pip install turbonext[eval]`
        raise ImportError("plotting a long-stream evaluation needs matplotlib: pip install 'turbonext[eval]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FRAME_METRICS), figsize=(4.2 * len(FRAME_METRICS), 3.4))
    settings = result["settings"]
    for ax, (name, (_, label, _)) in zip(axes, FRAME_METRICS.items()):
        for rendering, style in zip([r for r in ALL_RENDERINGS if r in result["per_frame"]], ("-", "--", ":")):
            values = result["per_frame"][rendering][name]
            ax.plot(range(len(values)), values, style, label=rendering)
        ax.axvline(settings["late_from"], color="grey", lw=0.5)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("frame index")
    axes[0].legend(fontsize=8)
    names = [r for r in ALL_RENDERINGS if r in result["per_frame"]]
    stream = (f"stream window {settings['window']}, schedule {settings['schedule'] or 'model default'}, "
              if "stream" in names else "")
    offline = (f"offline windows {settings.get('offline_window', 16)} / {settings.get('offline_overlap', 4)}, "
               if set(names) - {"stream"} else "")
    fig.suptitle(f"{result['split']}: {len(result['scenes'])} scenes, {stream}{offline}"
                 f"{settings['num_inference_steps']} steps", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
