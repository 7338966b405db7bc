"""Inside the reference path: does the reference's colour reach the main UNet, and where does the read look?

One reference (the first frame of ``--reference-scene``) and 4 poses of ``--scene``; one 4-step render. For every
reference-reading self-attention of the main UNet, averaged over the render's calls:

* ``tokens_hue_change``: |tokens(reference turned 120 deg) - tokens(reference)| / |tokens| over the reference
  person's tokens (the ReferenceNet's recorded tokens: 0 = its tokens ignore the colours);
* ``value_spread``: |v_ref - mean_v_ref| / |v_ref| (the reference values projected by the layer's to_v; near 0,
  the reference part of the attention adds a constant);
* ``reference_share_of_residual``: |attention output - the same with every reference key/value replaced by their
  mean| / |hidden states|: how much of the stream the reference's content moves;
* ``person_mass`` and ``person_token_share``: of the attention mass the target person's queries put on the
  reference, the share on the reference person's tokens, against those tokens' share of the reference's tokens
  (equal = the read does not look for the person).

    python benchmarks/reference_path_probe.py runs/v5 --json runs/probe_v5.json
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.reference_check_io import load_frames, write_json  # noqa: E402
from turbonext import TurboNextPipeline  # noqa: E402
from turbonext.models import reference_attention as ra  # noqa: E402
from turbonext.trainer.dataset import rotate_hue  # noqa: E402


def _grid(mask: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(N, 1, H, W) person mask -> (N, num_tokens) bool: a token is the person's when it is >= 20% covered."""
    side = int(math.isqrt(num_tokens))
    return F.interpolate(mask, size=(side, side), mode="area").flatten(1) > 0.2


def probe(pipe, scene: Path, ref_scene: Path, frames: int = 4, angle: float = 120.0) -> dict:
    truth = load_frames(sorted((scene / "images").iterdir())[:frames])
    poses = load_frames(sorted((scene / "poses").iterdir())[:frames])
    reference = load_frames(sorted((ref_scene / "images").iterdir())[:1])[0]
    reference_pose = load_frames(sorted((ref_scene / "poses").iterdir())[:1])[0] if pipe.reads_reference_pose else None
    target_person = (truth.amax(dim=1, keepdim=True) > 0.1).float()  # (F, 1, H, W)
    ref_person = (reference.amax(dim=0, keepdim=True)[None] > 0.1).float()  # (1, 1, H, W)
    stats: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    tokens: dict[float, dict] = {}
    original = ra.ReferenceReadProcessor.__call__

    def recording(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                  reference=None, reference_out=None, reference_skip_rows=0):
        kv = self._reference_kv(attn, reference)
        if kv is not None and encoder_hidden_states is None and not reference_skip_rows:
            with torch.no_grad():
                k_ref, v_ref = kv
                batch, n = hidden_states.shape[:2]
                out = ra.ReferenceReadProcessor._read(attn, hidden_states, kv)
                flat = ra.ReferenceReadProcessor._read(attn, hidden_states, (k_ref.mean(1, keepdim=True).expand_as(k_ref),
                                                                             v_ref.mean(1, keepdim=True).expand_as(v_ref)))
                row = stats[self.name]
                row["reference_share_of_residual"].append(float((out - flat).norm() / hidden_states.norm()))
                row["value_spread"].append(float((v_ref - v_ref.mean(1, keepdim=True)).norm() / v_ref.norm()))
                query = attn.to_q(hidden_states)
                keys = torch.cat([attn.to_k(hidden_states), k_ref.expand(batch, -1, -1)], dim=1)
                heads, dim = attn.heads, keys.shape[-1] // attn.heads
                q = query.view(batch, -1, heads, dim).transpose(1, 2)
                k = keys.view(batch, -1, heads, dim).transpose(1, 2)
                weights = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)[..., n:]  # (B, heads, n, n_ref)
                on_person = _grid(ref_person, k_ref.shape[1])[0]  # (n_ref,)
                queries = _grid(target_person, n)[:, None, :].expand(batch, heads, n)  # target person's queries
                total = weights.sum(-1)[queries]
                row["person_mass"].append(float((weights * on_person).sum(-1)[queries].sum() / total.sum()))
                row["person_token_share"].append(float(on_person.float().mean()))
        return original(self, attn, hidden_states, encoder_hidden_states, attention_mask, temb, reference,
                        reference_out, reference_skip_rows)

    ra.ReferenceReadProcessor.__call__ = recording
    try:
        pipe(reference_image=reference, pose_images=poses, reference_pose=reference_pose, num_inference_steps=4,
             window_size=frames, window_overlap=0, output_type="pt", generator=torch.Generator().manual_seed(0))
    finally:
        ra.ReferenceReadProcessor.__call__ = original
    text = pipe.encode_prompt("", "cpu")
    with torch.no_grad():
        for degrees in (0.0, angle):
            latents = pipe.encode_images(rotate_hue(reference, math.radians(degrees))[None])
            pose_features = pipe.pose_guider.encode_reference(reference_pose[None]) if reference_pose is not None else None
            tokens[degrees] = ra.run_reference_net(pipe.reference_unet, latents.to(pipe.reference_unet.dtype),
                                                   text.to(pipe.reference_unet.dtype), pose_features).tokens
    layers = {}
    for name, row in stats.items():
        a, b = tokens[0.0][name][0].float(), tokens[angle][name][0].float()
        person = _grid(ref_person, a.shape[0])[0]
        layers[name] = {key: float(np.mean(values)) for key, values in row.items()}
        layers[name]["tokens_hue_change"] = float((b[person] - a[person]).norm() / a[person].norm())
    return layers


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data", default="data/synth256_v2")
    parser.add_argument("--scene", default="id096/walk_00")
    parser.add_argument("--reference-scene", default="id096/dance_00")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pipe = TurboNextPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    layers = probe(pipe, Path(args.data) / args.scene, Path(args.data) / args.reference_scene, args.frames)
    for name, row in layers.items():
        print(f"{name[:48]:48s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    result = {"model": args.model, "scene": args.scene, "reference_scene": args.reference_scene, "layers": layers}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
