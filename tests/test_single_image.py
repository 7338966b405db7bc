"""Single-image pose transfer (issue 16): one pose -> one picture, the motion modules bypassed, and its benchmark."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import make_pose_frames, make_reference

from turbonext.commands.main import main as cli


def test_transfer_image_bypasses_the_motion_modules_and_restores_them(tiny_pipe):
    ref, pose = make_reference(seed=2), make_pose_frames(1, seed=5)[0]
    calls = []
    inner = tiny_pipe.unet.down_blocks[0].motion_modules[0].proj_in  # runs only if the motion module computes
    hook = inner.register_forward_hook(lambda *a: calls.append(1))
    seed = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with_modules = tiny_pipe.transfer_image(pose, reference_image=ref, num_inference_steps=2, output_type="np",
                                            skip_motion_modules=False, generator=seed())
    assert calls and with_modules.shape == (64, 64, 3)
    calls.clear()
    skipped = tiny_pipe.transfer_image(pose, num_inference_steps=2, output_type="np", generator=seed())
    assert not calls  # never ran
    assert np.abs(skipped - with_modules).max() > 1e-4  # and they do matter
    np.testing.assert_allclose(tiny_pipe.transfer_image(pose, num_inference_steps=2, output_type="np",
                                                        skip_motion_modules=False, generator=seed()),
                               with_modules, atol=1e-6)
    assert calls  # restored after the context
    hook.remove()
    assert tiny_pipe.transfer_image(pose, num_inference_steps=1).size == (64, 64)  # a PIL image by default


def test_bench_image_times_both_paths(tmp_path):
    out = tmp_path / "image.json"
    assert cli(["bench", "image", "--tiny", "--steps", "1", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["name"].split("modules ")[1] for r in rows] == ["skipped", "run"]
    assert all(r["seconds"] > 0 and r["vs_rpfm"] is None for r in rows)  # 64x64: not comparable to RPFM's 512
