"""Does the model take its colours from the reference? Render the same poses with a reference and with that
reference's colours rotated (hue turned about the grey axis; :func:`turbonext.trainer.dataset.rotate_hue`),
and measure how far the render's figure follows.

For each scene: the reference is the first frame of another clip of the same identity (as ``turbonext eval``
does), the poses are ``--frames`` frames of this clip, the figure mask is the ground truth's non-black
pixels. Reported per rotation angle (mean and spread over scenes):

* ``follow``: mean |render(rotated ref) - render(ref)| / mean |truth rotated - truth| over the figure's
  pixels: 1 = the render's colours turn with the reference's, 0 = the reference's colours are ignored;
* ``color_error``: mean |render(rotated ref) - truth rotated| per figure pixel (0-1 RGB): the issue-13
  colour error on identities whose palette no model has memorised;
* the same two with the reference attention off (``follow`` is then 0 by construction: a floor to read the
  model's numbers against), and ``copy``: the rotated reference itself scored as the render.

    python benchmarks/reference_hue_check.py turbonext/demo/turbonext-demo --data data/synth256_v2 \
        --split val_identity --scenes 8 --json runs/hue_check.json
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.reference_check_io import load_frames, write_json  # noqa: E402
from turbonext import TurboNextPipeline  # noqa: E402
from turbonext.evaluation.ablations import reference_attention_disabled  # noqa: E402
from turbonext.trainer.dataset import rotate_hue, scan_scenes  # noqa: E402


def _render(pipe, reference: torch.Tensor, poses: torch.Tensor, ref_pose: torch.Tensor | None, steps: int,
            seed: int) -> torch.Tensor:
    out = pipe(reference_image=reference, pose_images=poses, reference_pose=ref_pose, num_inference_steps=steps,
               window_size=poses.shape[0], window_overlap=0, output_type="pt",
               generator=torch.Generator().manual_seed(seed))
    return out.frames[0].float().cpu()  # (F, 3, H, W)


def scene_scores(pipe, scene, others, num_frames: int, angles: list[float], steps: int, seed: int) -> dict:
    """Scores of one scene (see the module docstring), one entry per angle in degrees."""
    ref_scene = others[0]
    reference = load_frames(ref_scene.images[:1])[0]
    ref_pose = load_frames(ref_scene.poses[:1])[0] if getattr(pipe, "reads_reference_pose", False) else None
    truth = load_frames(scene.images[:num_frames])
    poses = load_frames(scene.poses[:num_frames])
    mask = (truth.amax(dim=1, keepdim=True) > 0.1).float()  # (F, 1, H, W): the figure
    pixels = mask.sum().clamp_min(1.0)

    def per_pixel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b).abs().mean(dim=1, keepdim=True) * mask).sum() / pixels)

    base = _render(pipe, reference, poses, ref_pose, steps, seed)
    with reference_attention_disabled(pipe):
        base_off = _render(pipe, reference, poses, ref_pose, steps, seed)
    scores = {}
    for degrees in angles:
        angle = math.radians(degrees)
        rotated_ref, rotated_truth = rotate_hue(reference, angle), rotate_hue(truth, angle)
        turned = _render(pipe, rotated_ref, poses, ref_pose, steps, seed)
        with reference_attention_disabled(pipe):
            turned_off = _render(pipe, rotated_ref, poses, ref_pose, steps, seed)
        truth_change = max(per_pixel(rotated_truth, truth), 1e-6)
        scores[str(int(degrees))] = {
            "follow": per_pixel(turned, base) / truth_change,
            "color_error": per_pixel(turned, rotated_truth),
            "follow_reference_attention_off": per_pixel(turned_off, base_off) / truth_change,
            "color_error_reference_attention_off": per_pixel(turned_off, rotated_truth),
            "color_error_copy_reference": per_pixel(rotated_ref.expand_as(truth), rotated_truth),
        }
    scores["0"] = {"color_error": per_pixel(base, truth), "color_error_reference_attention_off": per_pixel(base_off, truth)}
    return scores


def summarise(per_scene: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for angle in per_scene[0]:
        out[angle] = {}
        for key in per_scene[0][angle]:
            values = np.array([s[angle][key] for s in per_scene])
            out[angle][key] = {"mean": float(values.mean()), "std": float(values.std()),
                               "min": float(values.min()), "max": float(values.max())}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data", default="data/synth256_v2")
    parser.add_argument("--split", default="val_identity")
    parser.add_argument("--scenes", type=int, default=8,
                        help="scenes scored, taken from the split's identities in turn")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--angles", default="120,240", help="hue rotations in degrees, comma-separated")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = TurboNextPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    scenes = scan_scenes(args.data, args.split)
    by_identity: dict[str, list] = {}
    for scene in scenes:
        by_identity.setdefault(scene.video, []).append(scene)
    # identities in turn (each one's clips in order), so that a few scenes already span several identities
    queues = [clips for clips in by_identity.values() if len(clips) > 1]
    chosen = [clips[i] for i in range(max(map(len, queues), default=0)) for clips in queues if i < len(clips)][: args.scenes]
    if not chosen:
        raise SystemExit(f"no identity of {args.data} split {args.split!r} has two clips to take a reference from")
    angles = [float(a) for a in args.angles.split(",")]
    per_scene = []
    for scene in chosen:
        others = [s for s in by_identity[scene.video] if s is not scene]
        per_scene.append(scene_scores(pipe, scene, others, args.frames, angles, args.steps, args.seed))
    result = {"model": args.model, "data": args.data, "split": args.split, "scenes": [s.name for s in chosen],
              "frames": args.frames, "steps": args.steps, "summary": summarise(per_scene), "per_scene": per_scene}
    for angle, row in result["summary"].items():
        cells = "  ".join(f"{k} {v['mean']:.3f}±{v['std']:.3f}" for k, v in row.items())
        print(f"hue {angle:>3}: {cells}")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
