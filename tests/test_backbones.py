"""Other SD backbones through from_components (issue 16): SD2.1 (v-prediction, wider text, linear projections)
on tiny components saved in its Hub layout, clip and stream. SDXL: tests/test_backbone_sdxl.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_pose_frames, make_reference

from turbonext import TurboNextPipeline
from turbonext.models.configs import TINY_SD21_TEXT_HIDDEN


def test_sd21_backbone_renders_clips_and_streams(tiny_hub):
    pipe = TurboNextPipeline.from_components(base=tiny_hub["base_sd21"], motion_adapter=tiny_hub["motion_adapter"],
                                             tiny_vae=tiny_hub["tiny_vae"], lcm_lora=None)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.unet.config.cross_attention_dim == TINY_SD21_TEXT_HIDDEN and pipe.unet.config.use_linear_projection
    clip = pipe(reference_image=make_reference(), pose_images=make_pose_frames(3), num_inference_steps=2,
                output_type="np", generator=torch.Generator().manual_seed(0)).frames
    assert clip.shape == (1, 3, 64, 64, 3) and np.isfinite(clip).all()
    session = pipe.stream(num_inference_steps=2, window=4, output_type="np")
    assert session.schedule.prediction_type == "v_prediction"
    frames = [f for pose in make_pose_frames(6, seed=1) for f in session.step(pose)] + session.flush()
    assert len(frames) == 6


def test_sdxl_unets_say_what_added_conditioning_they_need_and_other_addition_embeddings_are_refused():
    from turbonext.models.unet_motion import TurboNextUNetMotionModel

    def unet(**addition):
        return TurboNextUNetMotionModel(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
                                        norm_num_groups=8, down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
                                        up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"),
                                        num_attention_heads=2, motion_num_attention_heads=2,
                                        use_motion_mid_block=False, **addition)

    sample, text = torch.randn(1, 4, 2, 8, 8), torch.randn(2, 77, 32)
    sdxl = unet(addition_embed_type="text_time", projection_class_embeddings_input_dim=32 + 6 * 8,
                addition_time_embed_dim=8)
    with pytest.raises(ValueError, match="text_embeds.*time_ids"):
        sdxl(sample, 10, encoder_hidden_states=text)
    out = sdxl(sample, 10, encoder_hidden_states=text,
               added_cond_kwargs={"text_embeds": torch.randn(1, 32), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])})
    assert out.sample.shape == sample.shape
    with pytest.raises(NotImplementedError, match="text_time"):
        unet(addition_embed_type="text", encoder_hid_dim=32)(sample, 10, encoder_hidden_states=text)
