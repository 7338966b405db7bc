"""Fast / HQ modes switched by one argument, without reloading (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_pose_frames, make_reference, write_tiny_lora
from diffusers import DPMSolverMultistepScheduler, LCMScheduler

from turbonext.pipelines.pipeline_turbonext import HQ_NEGATIVE_PROMPT


def run(pipe, **kwargs):
    return pipe(reference_image=make_reference(seed=8), pose_images=make_pose_frames(3), output_type="latent",
                generator=torch.Generator().manual_seed(0), **kwargs).frames.numpy()


@pytest.fixture
def lcm(tiny_hub, tmp_path):
    return write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "lcm", seed=11)


def test_fast_and_hq_switch_without_reloading(tiny_pipe_factory, tiny_hub, tmp_path, lcm):
    pipe = tiny_pipe_factory().load_lcm_lora(lcm)
    assert pipe.mode == "fast" and isinstance(pipe.scheduler, LCMScheduler)
    fast = run(pipe)
    fused = tiny_pipe_factory(lcm_lora=lcm)  # the usual fused LCM model: the same picture
    np.testing.assert_allclose(fast, run(fused), atol=1e-4)

    hq = run(pipe, mode="hq", num_inference_steps=3)
    assert pipe.mode == "hq" and isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.scheduler.config.use_karras_sigmas
    base = tiny_pipe_factory()  # no LCM at all, the HQ sampler by hand
    base.scheduler = DPMSolverMultistepScheduler.from_config(base.scheduler.config, use_karras_sigmas=True)
    np.testing.assert_allclose(hq, run(base, num_inference_steps=3, guidance_scale=6.0,
                                       negative_prompt=HQ_NEGATIVE_PROMPT), atol=1e-4)
    np.testing.assert_allclose(run(pipe, mode="fast"), fast, atol=1e-5)  # and back


def test_lcm_scale_skip_scheduler_and_style_loras_follow_the_mode(tiny_pipe_factory, tiny_hub, tmp_path, lcm):
    pipe = tiny_pipe_factory().load_lcm_lora(lcm)
    style = write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "style", seed=12)
    pipe.load_style_lora(style, weight=0.6)
    layer = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert layer.scaling["lcm"] == pytest.approx(1.0) and layer.scaling["style1"] == pytest.approx(0.6)
    pipe.set_mode("hq", skip_scheduler=True)
    assert layer.scaling["lcm"] == 0 and layer.scaling["style1"] == pytest.approx(0.6)
    assert isinstance(pipe.scheduler, LCMScheduler)  # the scheduler was kept
    pipe.set_mode("fast", lcm_lora_scale=0.5)
    assert layer.scaling["lcm"] == pytest.approx(0.5)


def test_hq_is_refused_where_lcm_is_fused_into_the_weights(tiny_pipe_factory, lcm):
    fused = tiny_pipe_factory(lcm_lora=lcm)
    with pytest.raises(ValueError, match="fused"):
        fused.set_mode("hq")
    with pytest.raises(ValueError, match="mode must be one of"):
        fused.set_mode("turbo")
    with pytest.raises(ValueError, match="needs LCM-LoRA"):
        tiny_pipe_factory().set_mode("fast")
