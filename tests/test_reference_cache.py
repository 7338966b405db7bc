"""The reference cache stays right: shared components, weight changes, other LoRA adapters, CPU offload, and
one reference per training sample."""

import numpy as np
import pytest
import torch
from conftest import make_pose_frames, make_reference, write_tiny_lora
from peft import LoraConfig

from turbonext import TurboNextPipeline
from turbonext.models.reference_attention import NoReferenceError
from turbonext.trainer.training_model import TrainingModel


def latents(pipe, reference_image=None, seed=0, frames=3):
    """Denoised latents (more sensitive than decoded frames through a random tiny VAE)."""
    out = pipe(reference_image=reference_image, pose_images=make_pose_frames(frames), num_inference_steps=2,
               generator=torch.Generator().manual_seed(seed), output_type="latent").frames
    return out.numpy()


def kv_matches_projection(pipe) -> float:
    """Largest difference between the cached K and the main UNet's current to_k(tokens), over all layers."""
    cache = pipe.reference_state.cache
    worst = 0.0
    with torch.no_grad():
        for name, tokens in cache.tokens.items():
            attn = pipe.unet.get_submodule(name)
            worst = max(worst, float((cache.kv[name][0] - attn.to_k(tokens.to(attn.to_k.weight.dtype))).abs().max()))
    return worst


@pytest.fixture
def pipe(tiny_pipe_factory):
    return tiny_pipe_factory()


def test_pipelines_sharing_components_keep_their_own_references(pipe):
    ref_a, ref_b = make_reference(seed=1), make_reference(seed=2)
    alone_a = latents(pipe, ref_a)
    alone_b = latents(pipe, ref_b)
    assert np.abs(alone_a - alone_b).max() > 1e-3
    pipe.set_reference(ref_a)
    other = TurboNextPipeline(**pipe.components)  # the same UNets, another pipeline
    other.set_progress_bar_config(disable=True)
    other.set_reference(ref_b)
    np.testing.assert_allclose(latents(pipe), alone_a, atol=1e-6)  # still a, though b was set last
    np.testing.assert_allclose(latents(other), alone_b, atol=1e-6)
    copy = TurboNextPipeline.from_pipe(pipe)  # diffusers' way to share components
    copy.set_progress_bar_config(disable=True)
    with pytest.raises(NoReferenceError, match="no reference set"):
        latents(copy)  # a new pipeline starts without a reference; it never reads another's
    np.testing.assert_allclose(latents(copy, ref_b), alone_b, atol=1e-6)
    np.testing.assert_allclose(latents(pipe), alone_a, atol=1e-6)


def test_an_adapter_added_to_the_unet_refreshes_the_cached_kv(pipe):
    ref = make_reference(seed=3)
    pipe.set_reference(ref)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_k", "to_v"], init_lora_weights=False))
    assert kv_matches_projection(pipe) > 1e-3  # stale until the next use...
    pipe.set_reference(ref)  # ...and setting the same image again refreshes it
    assert kv_matches_projection(pipe) < 1e-5
    pipe.unet.disable_adapters()
    latents(pipe)  # every call uses the cache brought up to date
    assert kv_matches_projection(pipe) < 1e-5
    pipe.unet.enable_adapters()
    stream = pipe.stream()
    assert kv_matches_projection(pipe) < 1e-5 and stream.reference is pipe.reference_state.cache


def test_a_changed_reference_net_reruns_it(pipe, tiny_hub, tmp_path):
    calls = []
    pipe.reference_unet.register_forward_hook(lambda *a: calls.append(1))
    ref = make_reference(seed=4)
    before = latents(pipe, ref)
    pipe.set_reference(ref)
    assert len(calls) == 1  # same image, same weights: reused
    pipe.reference_unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"],
                                               init_lora_weights=False))
    after = latents(pipe)  # reference_image=None: the same photo, through the changed ReferenceNet
    assert len(calls) == 2 and np.abs(after - before).max() > 1e-4
    pipe.set_reference(ref)
    assert len(calls) == 2
    pipe.reference_unet.disable_adapters()
    np.testing.assert_allclose(latents(pipe), before, atol=1e-6)
    assert len(calls) == 3


def test_lora_load_fuse_and_unload_keep_the_cache_right(pipe, tiny_hub, tmp_path):
    lora = write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "style", seed=5)
    ref = make_reference(seed=5)
    plain = latents(pipe, ref)
    pipe.load_lora_weights(lora, weight_name="pytorch_lora_weights.safetensors", adapter_name="style")
    styled = latents(pipe, ref)
    assert kv_matches_projection(pipe) < 1e-5 and np.abs(styled - plain).max() > 1e-4
    pipe.set_adapters(["style"], [0.5])
    latents(pipe)
    assert kv_matches_projection(pipe) < 1e-5
    pipe.fuse_lora(lora_scale=1.0)
    latents(pipe)
    assert kv_matches_projection(pipe) < 1e-5
    pipe.unfuse_lora()
    pipe.unload_lora_weights()
    np.testing.assert_allclose(latents(pipe, ref), plain, atol=1e-5)


def test_fuse_lcm_lora_keeps_the_users_other_adapters(tiny_pipe_factory, tiny_hub, tmp_path):
    style = write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "style", seed=6)
    lcm = write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "lcm", seed=7)
    ref = make_reference(seed=6)
    pipe = tiny_pipe_factory()
    pipe.load_lora_weights(style, weight_name="pytorch_lora_weights.safetensors", adapter_name="style")
    pipe.set_adapters(["style"], [0.7])
    pipe.fuse_lcm_lora(lcm)
    assert pipe.get_list_adapters()["unet"] == ["style"] and pipe.get_active_adapters() == ["style"]
    # the same as both adapters active together, unfused: style at 0.7, LCM at 1.0
    expected = tiny_pipe_factory()
    expected.load_lora_weights(style, weight_name="pytorch_lora_weights.safetensors", adapter_name="style")
    expected.load_lora_weights(lcm, weight_name="pytorch_lora_weights.safetensors", adapter_name="lcm")
    expected.set_adapters(["style", "lcm"], [0.7, 1.0])
    expected.use_lcm_scheduler()
    np.testing.assert_allclose(latents(pipe, ref), latents(expected, ref), rtol=1e-5, atol=1e-4)
    pipe.disable_lora()  # the style can still be switched off; LCM stays fused
    lcm_only = tiny_pipe_factory()
    lcm_only.fuse_lcm_lora(lcm)
    np.testing.assert_allclose(latents(pipe, ref), latents(lcm_only, ref), rtol=1e-5, atol=1e-4)


def test_model_cpu_offload_places_inputs_on_the_execution_device(pipe):
    """On a machine without an accelerator, diffusers still offloads to "cpu:0": the execution device is then a
    device object the weights' own device ("cpu") is not equal to, which is enough to see which one the code
    reads. (With an accelerator the same calls run end to end: test_offload_on_an_accelerator.)"""
    ref = make_reference(seed=8)
    expected = latents(pipe, ref)
    stream_expected = pipe.stream(reference_image=ref, generator=torch.Generator().manual_seed(0), output_type="np")
    frames_expected = [f for p in make_pose_frames(4) for f in stream_expected.step(p)] + stream_expected.flush()
    assert "encoder_vae" in pipe.model_cpu_offload_seq
    pipe.clear_reference()
    pipe.enable_model_cpu_offload(device="cpu")
    assert hasattr(pipe.encoder_vae, "_hf_hook")  # offloaded with the rest, not left behind
    execution = pipe._execution_device
    np.testing.assert_allclose(latents(pipe, ref), expected, atol=1e-6)
    assert pipe.reference_state.cache.kv_fingerprint.endswith(f"@{execution}")  # K/V kept for the execution device
    stream = pipe.stream(reference_image=ref, generator=torch.Generator().manual_seed(0), output_type="np")
    assert stream.device == execution
    frames = [f for p in make_pose_frames(4) for f in stream.step(p)] + stream.flush()
    np.testing.assert_array_equal(np.stack(frames), np.stack(frames_expected))


@pytest.mark.gpu
def test_offload_on_an_accelerator(tiny_pipe_factory):
    """The real offload path (weights on the CPU, compute on the accelerator); deselected without one."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pipe = tiny_pipe_factory()
    pipe.enable_model_cpu_offload()
    out = latents(pipe, make_reference(seed=9))
    stream = pipe.stream(reference_image=make_reference(seed=9), output_type="np")
    assert np.isfinite(out).all() and len([f for p in make_pose_frames(4) for f in stream.step(p)] + stream.flush()) == 4


@torch.no_grad()
def test_each_training_sample_reads_its_own_reference(pipe):
    """The batch > 1 branch of reference attention: sample b of a batch equals a batch of one with reference b."""
    torch.manual_seed(0)
    model = TrainingModel(pipe)
    noisy = torch.randn(2, 4, 3, 8, 8)
    ref_latents = torch.randn(2, 4, 8, 8) * 2
    text = pipe.encode_prompt("", torch.device("cpu")).expand(2, -1, -1)
    poses = torch.rand(2, 3, 3, 64, 64)
    timesteps = torch.tensor([500, 700])
    both = model(noisy, timesteps, ref_latents, text, poses)
    for b in range(2):
        one = model(noisy[b:b + 1], timesteps[b:b + 1], ref_latents[b:b + 1], text[b:b + 1], poses[b:b + 1])
        torch.testing.assert_close(both[b:b + 1], one, atol=1e-5, rtol=1e-5)
    swapped = model(noisy, timesteps, ref_latents.flip(0), text, poses)
    assert (swapped - both).abs().max() > 1e-3  # the references matter, per sample
