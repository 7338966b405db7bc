"""The offline clip path (``TurboNextPipeline.__call__``): overlapping windows are blended, and classifier-free
guidance points from the negative prompt towards the prompt (tiny components, latents, CPU)."""

import numpy as np
import torch
from conftest import make_pose_frames, make_reference


def clip_latents(pipe, poses, **kwargs):
    return pipe(reference_image=None, pose_images=poses, output_type="latent",
                generator=torch.Generator().manual_seed(0), **kwargs).frames.numpy().astype(np.float64)


def test_overlap_frames_blend_the_windows_that_cover_them(tiny_pipe):
    """12 frames in windows [0, 8) and [4, 12): frames 4-7 are predicted by both windows and blended, so they
    depend on poses that only the FIRST window sees (frame 0, through the motion modules). If the windows
    were not blended ("the last window wins"), frames 4-7 would ignore frame 0's pose entirely."""
    torch.manual_seed(0)
    with torch.no_grad():  # a trained guider: the poses matter (a zero guider would make this vacuous)
        torch.nn.init.normal_(tiny_pipe.pose_guider.zero_conv.weight, std=1.0)
    tiny_pipe.set_reference(make_reference())
    poses = make_pose_frames(12)
    moved = list(poses)
    moved[0] = np.ascontiguousarray(make_pose_frames(1, seed=7)[0][:, ::-1])  # another pose at frame 0 only
    kwargs = dict(num_inference_steps=2, window_size=8, window_overlap=4)
    a, b = clip_latents(tiny_pipe, poses, **kwargs), clip_latents(tiny_pipe, moved, **kwargs)
    change = np.abs(a - b).mean(axis=(0, 1, 3, 4))  # per frame
    # Measured: frame 0 1.3e-2, overlap frames 4-7 8.7e-4 .. 2.3e-4 (exactly 0 without blending).
    assert change[0] > 1e-3
    assert (change[4:8] > 2e-5).all(), change


def test_classifier_free_guidance_moves_from_the_negative_prompt_towards_the_prompt(tiny_pipe):
    """With one DDIM step the update is affine in the noise prediction, so the guided output must be
    out(N) + s * (out(P) - out(N)), where out(X) is prompt X without guidance. A flipped sign
    (uncond - s * (cond - uncond)) or swapped halves land far from it."""
    prompt, negative = "a person dancing", "blurry"
    # the text encoder tells the two prompts apart (else this test could not see the guidance)
    assert (tiny_pipe.encode_prompt(prompt, "cpu") - tiny_pipe.encode_prompt(negative, "cpu")).abs().mean() > 1e-2
    tiny_pipe.set_reference(make_reference(), prompt=prompt)  # once: the same reference tokens for every run
    poses = make_pose_frames(3)
    kwargs = dict(num_inference_steps=1)
    cond = clip_latents(tiny_pipe, poses, prompt=prompt, **kwargs)
    uncond = clip_latents(tiny_pipe, poses, prompt=negative, **kwargs)
    assert np.abs(cond - uncond).max() > 1e-3  # measured 1.8e-3: far above the tolerance below
    scale = 3.0
    guided = clip_latents(tiny_pipe, poses, prompt=prompt, negative_prompt=negative, guidance_scale=scale, **kwargs)
    # measured error 1e-6 (a batch of 2 vs 1); a flipped sign is off by 1.1e-2
    np.testing.assert_allclose(guided, uncond + scale * (cond - uncond), rtol=0, atol=2e-5)


def test_temporary_clip_folders_do_not_pile_up(monkeypatch, tmp_path):
    from turbonext.jobs import clip

    monkeypatch.setattr(clip.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(clip, "_clip_folders", clip.collections.deque())
    made = [clip._new_clip_folder() for _ in range(clip.KEPT_CLIP_FOLDERS + 3)]
    left = sorted(tmp_path.glob("turbonext-clip-*"))
    assert len(left) == clip.KEPT_CLIP_FOLDERS and set(left) == set(made[3:])  # the oldest three removed
