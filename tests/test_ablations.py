"""Ablations switch off exactly one module each (or shuffle the poses), restore it afterwards, and run through the eval CLI."""

import json

import numpy as np
import torch
from conftest import make_pose_frames, make_reference

from turbonext.commands import eval as eval_command
from turbonext.evaluation.ablations import ABLATIONS, pose_guider_zeroed, reference_attention_disabled
from turbonext.synthetic import write_dataset


def latents(pipe, ref_seed=0, poses_seed=0):
    pipe.clear_reference()
    return pipe(reference_image=make_reference(seed=ref_seed), pose_images=make_pose_frames(3, seed=poses_seed),
                num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent").frames


def test_ablations_switch_off_one_module_and_restore_it(tiny_pipe):
    with torch.no_grad():
        torch.nn.init.normal_(tiny_pipe.pose_guider.zero_conv.weight, std=1.0)
    weight = tiny_pipe.pose_guider.zero_conv.weight.detach().clone()
    full = latents(tiny_pipe)
    with reference_attention_disabled(tiny_pipe):
        a, b = latents(tiny_pipe, ref_seed=1), latents(tiny_pipe, ref_seed=2)
        torch.testing.assert_close(a, b)  # the reference no longer matters
    with pose_guider_zeroed(tiny_pipe):
        a, b = latents(tiny_pipe, poses_seed=1), latents(tiny_pipe, poses_seed=2)
        torch.testing.assert_close(a, b)  # the pose no longer matters
    assert tiny_pipe.reference_state.enabled
    torch.testing.assert_close(tiny_pipe.pose_guider.zero_conv.weight, weight)
    torch.testing.assert_close(latents(tiny_pipe), full)


def test_eval_cli_ablations(tiny_pipe, tmp_path, capsys):
    data = tmp_path / "data"
    write_dataset(data, num_identities=3, motions=("walk", "kick"), frames=3, size=64, progress=False)
    tiny_pipe.save_pretrained(tmp_path / "model")
    out = tmp_path / "r.json"
    assert eval_command.cli_main(["--model", str(tmp_path / "model"), "--data", str(data), "--max-sequences", "1",
                             "--steps", "1", "--device", "cpu", "--no-lpips", "--ablations", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert all(f"| {name} |" in text for name in ABLATIONS)
    assert "what it shows" in text and "draws nothing without pose" in text and "| baseline: copy reference |" in text
    saved = json.loads(out.read_text())
    assert set(saved["ablations"]) == set(ABLATIONS) == {"full model", "no reference attention", "pose guider zeroed",
                                                          "pose shuffled"}
    assert all(np.isfinite(v["metrics"]["ssim_box"]) for v in saved["ablations"].values())
    for name, v in saved["ablations"].items():
        assert v["shows"] and ("helps" in v) == (name != "full model")
        if name != "full model":
            assert all(n == 1 and 0 <= k <= n for k, n in v["helps"].values())  # one identity in one scene
    assert saved["ablations"]["pose shuffled"]["metrics"]["iou"] is not None
    assert set(saved["baselines"]) == {"copy reference", "black frame"}
