"""Clips joined with interpolated transition frames (issue 16: long videos)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_pose_frames, make_reference

from turbonext.pipelines.transitions import join_latent_clips, slerp, transition_latents


def test_slerp_keeps_the_norm_where_a_linear_mix_shrinks_it():
    a, b = torch.randn(4, 8, 8), torch.randn(4, 8, 8)
    b = b / b.norm() * a.norm()
    half = slerp(a, b, 0.5)
    assert abs(float(half.norm() / a.norm()) - 1) < 1e-4
    assert float(((a + b) / 2).norm() / a.norm()) < 0.8  # two independent latents: the mix is ~0.71 as long
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(slerp(a, a, 0.3), a)  # parallel: falls back to linear


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_transitions_sit_between_the_clips(mode):
    end, start = torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8) * 2
    frames = transition_latents(end + 1, start, 3, mode)
    assert frames.shape == (1, 4, 3, 8, 8)
    if mode == "linear":
        torch.testing.assert_close(frames[0, 0, :, 0, 0], torch.tensor([1.25, 1.5, 1.75]))
    clips = [torch.randn(1, 4, 5, 8, 8), torch.randn(1, 4, 2, 8, 8), torch.randn(1, 4, 3, 8, 8)]
    joined = join_latent_clips(clips, transition_frames=4, mode=mode)
    assert joined.shape == (1, 4, 5 + 4 + 2 + 4 + 3, 8, 8)
    torch.testing.assert_close(joined[:, :, :5], clips[0])
    torch.testing.assert_close(joined[:, :, 9:11], clips[1])
    assert join_latent_clips(clips, transition_frames=0).shape[2] == 10


def test_bad_joins_say_what_is_wrong():
    with pytest.raises(ValueError, match="differ in shape"):
        join_latent_clips([torch.randn(1, 4, 2, 8, 8), torch.randn(1, 4, 2, 16, 16)])
    with pytest.raises(ValueError, match="mode must be one of"):
        transition_latents(torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), 2, "cubic")
    with pytest.raises(ValueError, match="output_type='latent'"):
        join_latent_clips([torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)])
    with pytest.raises(ValueError, match="no clips"):
        join_latent_clips([])


def test_pipeline_joins_two_clips_into_one_video(tiny_pipe):
    a = tiny_pipe(reference_image=make_reference(seed=1), pose_images=make_pose_frames(3), num_inference_steps=1,
                  output_type="latent").frames
    b = tiny_pipe(reference_image=make_reference(seed=2), pose_images=make_pose_frames(2, seed=4),
                  num_inference_steps=1, output_type="latent").frames
    video = tiny_pipe.join_clips([a, b], transition_frames=3, output_type="np")
    assert video.shape[:2] == (1, 3 + 3 + 2)
    alone = tiny_pipe.join_clips([a], output_type="np")
    torch.testing.assert_close(torch.from_numpy(video[0, :3]), torch.from_numpy(alone[0]))
