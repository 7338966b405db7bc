"""Loading paths: component repos, motion adapter layouts, LCM-LoRA in both key formats, the Hub, errors."""

import numpy as np
import pytest
import torch
from conftest import make_pose_frames, make_reference, write_tiny_lora
from diffusers import LCMScheduler

from turbonext import TurboNextPipeline
from turbonext.loaders.hub import MissingWeightsError


def spatial_weight(pipe, name="down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"):
    return dict(pipe.unet.named_parameters())[name].detach().clone()


def test_from_components_assembles_the_model(tiny_pipe_factory, tiny_hub):
    from diffusers import UNet2DConditionModel

    pipe = tiny_pipe_factory()
    base = UNet2DConditionModel.from_pretrained(tiny_hub["base"], subfolder="unet")
    # ReferenceNet starts as a copy of the base UNet, and the main UNet keeps the base's spatial weights
    for (name, p), (_, q) in zip(pipe.reference_unet.named_parameters(), base.named_parameters()):
        torch.testing.assert_close(p, q, msg=name)
    torch.testing.assert_close(spatial_weight(pipe), dict(base.named_parameters())[
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"])
    assert pipe.unet.mid_block is not None and not hasattr(pipe.unet.mid_block, "motion_modules")  # v3 layout
    assert type(pipe.vae).__name__ == "AutoencoderTiny" and type(pipe.encoder_vae).__name__ == "AutoencoderKL"


def test_v1_5_2_adapter_with_motion_mid_block_loads_and_runs(tiny_pipe_factory, tiny_hub):
    pipe = tiny_pipe_factory(motion_adapter=tiny_hub["motion_adapter_v2"])
    assert hasattr(pipe.unet.mid_block, "motion_modules")
    out = pipe(reference_image=make_reference(), pose_images=make_pose_frames(3), num_inference_steps=1, output_type="np")
    assert out.frames.shape == (1, 3, 64, 64, 3)


def test_sd_vae_decoding_when_no_tiny_vae(tiny_pipe_factory):
    pipe = tiny_pipe_factory(tiny_vae=None)
    assert type(pipe.vae).__name__ == "AutoencoderKL" and pipe.encoder_vae is None
    out = pipe(reference_image=make_reference(), pose_images=make_pose_frames(2), num_inference_steps=1, output_type="np")
    assert out.frames.shape == (1, 2, 64, 64, 3)


@pytest.mark.parametrize("fmt", ["peft", "kohya"])
def test_lcm_lora_is_fused_in_both_key_formats(tiny_pipe_factory, tiny_hub, tmp_path, fmt):
    lora = write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / fmt, fmt=fmt)
    plain = tiny_pipe_factory()
    fused = tiny_pipe_factory(lcm_lora=lora)
    assert isinstance(fused.scheduler, LCMScheduler)
    delta = (spatial_weight(fused) - spatial_weight(plain)).abs().max()
    assert delta > 1e-3, "LoRA did not change the weights"
    assert not any("lora" in n for n, _ in fused.unet.named_parameters()), "LoRA layers should be unloaded after fusing"
    out = fused(reference_image=make_reference(), pose_images=make_pose_frames(2), output_type="np")  # default 4 steps
    assert out.frames.shape == (1, 2, 64, 64, 3) and np.isfinite(out.frames).all()


def test_both_lora_formats_fuse_to_the_same_weights(tiny_pipe_factory, tiny_hub, tmp_path):
    a = tiny_pipe_factory(lcm_lora=write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "a", fmt="peft", seed=3))
    b = tiny_pipe_factory(lcm_lora=write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "b", fmt="kohya", seed=3))
    torch.testing.assert_close(spatial_weight(a), spatial_weight(b), rtol=1e-5, atol=1e-6)


def test_fusing_after_set_reference_refreshes_the_kv_cache(tiny_pipe_factory, tiny_hub, tmp_path):
    pipe = tiny_pipe_factory()
    pipe.set_reference(make_reference())
    name = next(iter(pipe.reference_state.cache.kv))
    k_before = pipe.reference_state.cache.kv[name][0].clone()
    pipe.fuse_lcm_lora(write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "l", fmt="peft"))
    cache = pipe.current_reference()  # what every call and stream uses: brought up to date
    assert (cache.kv[name][0] - k_before).abs().max() > 1e-4
    attn = pipe.unet.get_submodule(name)
    torch.testing.assert_close(cache.kv[name][0], attn.to_k(cache.tokens[name]))


def test_hub_repo_id_is_downloaded_then_loaded(tiny_pipe, tmp_path, monkeypatch):
    tiny_pipe.save_pretrained(tmp_path / "snapshot")
    seen = {}

    def fake_snapshot_download(repo_id, **kwargs):
        seen.update(kwargs, repo_id=repo_id)
        return str(tmp_path / "snapshot")

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    pipe = TurboNextPipeline.from_pretrained("someone/turbonext-model", revision="v1")
    assert seen["repo_id"] == "someone/turbonext-model" and seen["revision"] == "v1"
    assert "*.safetensors" in seen["allow_patterns"] and not any("bin" in p for p in seen["allow_patterns"])
    assert isinstance(pipe, TurboNextPipeline)


def test_missing_weights_offline_give_a_clear_error(tmp_path):
    with pytest.raises(MissingWeightsError, match="cannot be reached|not in the local Hub cache"):
        TurboNextPipeline.from_pretrained("nobody/not-a-cached-repo", cache_dir=str(tmp_path))
    with pytest.raises(MissingWeightsError, match="not an existing folder"):
        TurboNextPipeline.from_pretrained(str(tmp_path / "missing" / "folder"))
