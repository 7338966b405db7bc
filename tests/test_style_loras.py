"""Style LoRAs stacked on the LCM-fused pipeline (issue 16): up to three, either key format, weights as
given, the cached reference K/V following them, and unloading them leaving LCM intact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_reference, write_tiny_lora
from test_reference_cache import kv_matches_projection, latents

from turbonext.pipelines.pipeline_turbonext import MAX_STYLE_LORAS


@pytest.fixture
def loras(tiny_hub, tmp_path):
    unet = f"{tiny_hub['base']}/unet"
    return [write_tiny_lora(unet, tmp_path / f"s{i}", fmt="kohya" if i == 1 else "peft", seed=20 + i)
            for i in range(MAX_STYLE_LORAS + 1)]


def test_style_loras_stack_up_to_the_limit_and_unload_to_the_lcm_model(tiny_pipe_factory, tiny_hub, tmp_path, loras):
    pipe = tiny_pipe_factory(lcm_lora=write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "lcm", seed=9))
    ref = make_reference(seed=3)
    plain = latents(pipe, ref)
    pipe.load_style_lora(loras[0], weight=0.8)
    one = latents(pipe, ref)
    assert np.abs(one - plain).max() > 1e-4 and kv_matches_projection(pipe) < 1e-5  # the K/V followed
    pipe.load_style_lora(loras[1] + "/pytorch_lora_weights.safetensors", weight=0.5, name="ink")  # kohya keys, a file
    pipe.load_style_lora(loras[2], weight=0.3)
    assert pipe.style_loras == {"style1": 0.8, "ink": 0.5, "style2": 0.3}
    assert sorted(pipe.get_active_adapters()) == ["ink", "style1", "style2"]
    three = latents(pipe, ref)
    assert np.abs(three - one).max() > 1e-4 and kv_matches_projection(pipe) < 1e-5
    with pytest.raises(ValueError, match=f"at most {MAX_STYLE_LORAS} style LoRAs"):
        pipe.load_style_lora(loras[3])
    with pytest.raises(ValueError, match="already loaded"):
        pipe.unload_style_loras().load_style_lora(loras[0], name="lcm")
    assert pipe.style_loras == {} and pipe.get_list_adapters().get("unet", []) == []
    np.testing.assert_allclose(latents(pipe, ref), plain, atol=1e-5)  # LCM (fused) is still there, styles gone
    assert type(pipe.scheduler).__name__ == "LCMScheduler"


def test_a_style_weight_of_zero_changes_nothing(tiny_pipe_factory, loras):
    pipe = tiny_pipe_factory()
    ref = make_reference(seed=4)
    plain = latents(pipe, ref)
    pipe.load_style_lora(loras[0], weight=0.0)
    np.testing.assert_allclose(latents(pipe, ref), plain, atol=1e-5)
    with torch.no_grad():
        assert kv_matches_projection(pipe) < 1e-5


def test_unloading_some_style_loras_keeps_the_others_at_their_weights(tiny_pipe_factory, loras):
    pipe = tiny_pipe_factory()
    ref = make_reference(seed=5)
    pipe.load_style_lora(loras[0], weight=0.7, name="a")
    only_a = latents(pipe, ref)
    pipe.load_style_lora(loras[2], weight=0.4, name="b")
    assert np.abs(latents(pipe, ref) - only_a).max() > 1e-4
    pipe.unload_style_loras(["b", "not-loaded"])  # an unknown name is ignored
    assert pipe.style_loras == {"a": 0.7} and pipe.get_list_adapters()["unet"] == ["a"]
    np.testing.assert_allclose(latents(pipe, ref), only_a, atol=1e-5)  # "a" at its own weight, as before "b"
    pipe.unload_style_loras(["a"])
    assert pipe.style_loras == {} and not any(pipe.get_list_adapters().values())


def test_restore_sampling_puts_back_the_scheduler_and_mode(tiny_pipe_factory, tiny_hub, tmp_path):
    pipe = tiny_pipe_factory(lcm_lora=None)
    pipe.load_lcm_lora(write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "lcm", seed=9))
    scheduler, mode = pipe.scheduler, pipe.mode
    assert mode == "fast"
    ref = make_reference(seed=6)
    fast = latents(pipe, ref)
    pipe.set_mode("hq")
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    pipe.restore_sampling(scheduler, mode)
    assert pipe.scheduler is scheduler and pipe.mode == "fast"
    np.testing.assert_allclose(latents(pipe, ref), fast, atol=1e-5)  # LCM-LoRA back at its weight
    with pytest.raises(ValueError, match="mode must be one of"):
        pipe.restore_sampling(scheduler, "slow")
