"""TurboNextPipeline on tiny components: outputs, guider, reference cache, windows, save/load, bad inputs."""

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import make_pose_frames, make_reference

from turbonext import TurboNextPipeline, TurboNextPipelineOutput


def run(pipe, frames=4, seed=0, **kwargs):
    kwargs.setdefault("reference_image", make_reference())
    kwargs.setdefault("pose_images", make_pose_frames(frames))
    kwargs.setdefault("output_type", "np")
    out = pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(seed), **kwargs).frames
    out = out if kwargs["output_type"] == "latent" else out[0]  # frames[0] is the clip (batched like diffusers')
    return out.numpy() if isinstance(out, torch.Tensor) else out


def latents(pipe, **kwargs):
    """Denoised latents: more sensitive than frames through a random tiny TAESD."""
    return run(pipe, output_type="latent", **kwargs)


def test_output_types_and_shapes(tiny_pipe):
    ref, poses = make_reference(), make_pose_frames(3)
    out = tiny_pipe(reference_image=PIL.Image.fromarray(ref), pose_images=[PIL.Image.fromarray(p) for p in poses],
                    num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, TurboNextPipelineOutput)
    assert len(out.frames) == 1 and len(out.frames[0]) == 3
    assert all(isinstance(f, PIL.Image.Image) and f.size == (64, 64) for f in out.frames[0])
    np_frames = run(tiny_pipe, frames=3)
    assert np_frames.shape == (3, 64, 64, 3) and np_frames.dtype == np.float32
    assert 0.0 <= np_frames.min() and np_frames.max() <= 1.0
    pt = tiny_pipe(pose_images=torch.from_numpy(np.stack(poses)).permute(0, 3, 1, 2), num_inference_steps=2,
                   output_type="pt").frames
    assert pt.shape == (1, 3, 3, 64, 64)
    latent = tiny_pipe(pose_images=poses, num_inference_steps=1, output_type="latent", return_dict=False)[0]
    assert latent.shape == (1, 4, 3, 8, 8)
    # PIL output equals the np output rounded to uint8
    pil = [np.asarray(f) for f in out.frames[0]]
    assert np.abs(np.stack(pil).astype(float) - np.round(np_frames * 255)).max() <= 1


def test_zero_initialised_guider_is_a_no_op(tiny_pipe):
    assert all(float(p.detach().abs().sum()) == 0 for p in tiny_pipe.pose_guider.zero_conv.parameters())
    with_guider = run(tiny_pipe)
    handle = tiny_pipe.unet.register_forward_pre_hook(
        lambda m, args, kwargs: (args, {**kwargs, "pose_features": None}), with_kwargs=True
    )
    try:
        without_guider = run(tiny_pipe)
    finally:
        handle.remove()
    np.testing.assert_array_equal(with_guider, without_guider)
    np.testing.assert_array_equal(with_guider, run(tiny_pipe, pose_images=make_pose_frames(4, seed=5)[::-1]))


def test_trained_guider_changes_output_and_follows_pose(tiny_pipe):
    base = latents(tiny_pipe)
    torch.manual_seed(1)
    with torch.no_grad():
        torch.nn.init.normal_(tiny_pipe.pose_guider.zero_conv.weight, std=1.0)
    trained = latents(tiny_pipe)
    assert np.abs(trained - base).mean() > 1e-2
    other_poses = latents(tiny_pipe, pose_images=make_pose_frames(4)[::-1])
    assert np.abs(other_poses - trained).mean() > 2e-3


def test_reference_net_runs_once_per_reference(tiny_pipe):
    calls = []
    tiny_pipe.reference_unet.register_forward_hook(lambda *a: calls.append(1))
    ref = make_reference(seed=1)
    run(tiny_pipe, frames=20, reference_image=ref)  # two windows x two steps: still one pass
    assert len(calls) == 1
    run(tiny_pipe, reference_image=ref)  # same reference again: reused
    run(tiny_pipe, reference_image=None)  # cached reference
    assert len(calls) == 1
    run(tiny_pipe, reference_image=make_reference(seed=2))  # a new reference: one more pass
    assert len(calls) == 2
    tiny_pipe.set_reference(make_reference(seed=3))
    run(tiny_pipe, reference_image=None)
    assert len(calls) == 3


def test_reference_attention_carries_the_reference(tiny_pipe):
    a = latents(tiny_pipe, reference_image=make_reference(seed=1))
    b = latents(tiny_pipe, reference_image=make_reference(seed=2))
    assert np.abs(a - b).mean() > 1e-3
    tiny_pipe.reference_state.enabled = False  # ablation: no reference attention
    c = run(tiny_pipe, reference_image=make_reference(seed=1))
    d = run(tiny_pipe, reference_image=make_reference(seed=2))
    np.testing.assert_array_equal(c, d)
    tiny_pipe.reference_state.enabled = True


def test_precomputed_kv_equals_projection_on_the_fly(tiny_pipe):
    from turbonext.models.reference_attention import ReferenceCache

    run(tiny_pipe)
    cache = tiny_pipe.reference_state.cache
    assert set(cache.kv) == set(cache.tokens) and len(cache.kv) > 0
    sample, text = torch.randn(1, 4, 3, 8, 8), torch.randn(3, 77, 32)

    def unet(reference):
        return tiny_pipe.unet(sample, 500, encoder_hidden_states=text, cross_attention_kwargs={"reference": reference},
                              return_dict=False)[0]

    with torch.no_grad():
        precomputed, on_the_fly, plain = unet(cache), unet(ReferenceCache(tokens=cache.tokens)), unet(None)
    torch.testing.assert_close(precomputed, on_the_fly, atol=1e-5, rtol=1e-5)
    assert (precomputed - plain).abs().max() > 1e-3  # the reference is read at all


def test_cache_follows_pipe_to(tiny_pipe):
    run(tiny_pipe)
    tiny_pipe.to(torch.float64)
    cache = tiny_pipe.reference_state.cache
    assert all(t.dtype == torch.float64 for t in cache.tokens.values())
    assert all(k.dtype == torch.float64 for k, _ in cache.kv.values())
    assert run(tiny_pipe, reference_image=None).shape == (4, 64, 64, 3)


def test_long_clips_use_blended_windows(tiny_pipe):
    calls = []
    tiny_pipe.unet.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[2]))
    frames = run(tiny_pipe, frames=20, window_size=8, window_overlap=4)
    assert frames.shape[0] == 20
    assert calls and set(calls) == {8}  # every window full length
    assert len(calls) == 2 * 4  # 2 steps x windows [0-8), [4-12), [8-16), [12-20)
    # frames in the same overlap zone move smoothly: no jump larger than between other neighbours
    diffs = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert diffs.max() < 5 * np.median(diffs) + 1e-3


def test_fixed_seed_is_deterministic(tiny_pipe):
    np.testing.assert_array_equal(run(tiny_pipe, seed=3), run(tiny_pipe, seed=3))
    assert np.abs(run(tiny_pipe, seed=3) - run(tiny_pipe, seed=4)).mean() > 1e-4


def test_save_then_load_gives_identical_frames(tiny_pipe, tmp_path):
    with torch.no_grad():
        torch.nn.init.normal_(tiny_pipe.pose_guider.zero_conv.weight, std=0.2)
    before = run(tiny_pipe)
    before_pil = run(tiny_pipe, output_type="pil")
    tiny_pipe.save_pretrained(tmp_path / "pipe")
    assert list((tmp_path / "pipe").rglob("*.bin")) == []
    loaded_offline = TurboNextPipeline.from_pretrained(tmp_path / "pipe")  # tests run with HF_HUB_OFFLINE=1
    loaded_offline.save_pretrained(tmp_path / "again")
    assert "local_files_only" not in (tmp_path / "again" / "tokenizer" / "tokenizer_config.json").read_text()
    loaded = TurboNextPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.unet).__name__ == "TurboNextUNetMotionModel"
    # identical images; float outputs agree to float32 rounding (summation order may differ)
    assert [np.asarray(f).tobytes() for f in run(loaded, output_type="pil")] == [np.asarray(f).tobytes() for f in before_pil]
    np.testing.assert_allclose(run(loaded), before, atol=1e-6)


def test_callback_on_step_end(tiny_pipe):
    seen = []

    def callback(pipe, i, t, kwargs):
        seen.append((i, int(t), tuple(kwargs["latents"].shape)))
        return kwargs

    run(tiny_pipe, callback_on_step_end=callback)
    assert [s[0] for s in seen] == [0, 1] and seen[0][2] == (1, 4, 4, 8, 8)


def test_classifier_free_guidance_runs(tiny_pipe):
    out = run(tiny_pipe, prompt="a person", guidance_scale=2.0)
    assert out.shape == (4, 64, 64, 3) and np.isfinite(out).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pose_images=[]), "empty"),
        (dict(pose_images=None), "pose_images is required"),
        (dict(pose_images=[np.zeros((64, 64, 4), np.uint8)]), r"\(H, W, 3\)"),
        (dict(pose_images=torch.zeros(2, 1, 64, 64)), r"\(F, 3, H, W\)"),
        (dict(pose_images=[np.zeros((60, 64, 3), np.uint8)]), "divisible by 8"),
        (dict(pose_images=[np.zeros((64, 64, 3), np.uint8), np.zeros((72, 64, 3), np.uint8)]), "same size"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(output_type="gif"), "output_type"),
        (dict(reference_image=np.zeros((64, 64), np.uint8)), "reference_image"),
        (dict(pose_images=["not an image"]), "unsupported type"),
    ],
)
def test_bad_inputs_raise_clear_errors(tiny_pipe, kwargs, message):
    args = dict(reference_image=make_reference(), pose_images=make_pose_frames(2), num_inference_steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        tiny_pipe(**args)


def test_no_reference_set_raises(tiny_pipe):
    with pytest.raises(ValueError, match="no reference set"):
        tiny_pipe(pose_images=make_pose_frames(2))


def test_rgba_and_grayscale_pil_references_are_accepted(tiny_pipe):
    ref = PIL.Image.fromarray(make_reference()).convert("RGBA")
    assert run(tiny_pipe, reference_image=ref).shape[0] == 4
    assert run(tiny_pipe, reference_image=ref.convert("L")).shape[0] == 4


def test_reference_cache_saved_and_loaded_from_disk(tiny_pipe, tmp_path):
    from turbonext.utils.feature_cache import FeatureCache

    disk = FeatureCache(tmp_path / "cache")
    calls = []
    tiny_pipe.reference_unet.register_forward_hook(lambda *a: calls.append(1))
    ref = make_reference(seed=4)
    tiny_pipe.set_reference(ref, feature_cache=disk)
    first = latents(tiny_pipe, reference_image=None)
    tiny_pipe.clear_reference()
    tiny_pipe.set_reference(ref, feature_cache=disk)  # from disk: no ReferenceNet pass
    assert len(calls) == 1
    np.testing.assert_array_equal(latents(tiny_pipe, reference_image=None), first)
    tiny_pipe.clear_reference()
    tiny_pipe.set_reference(ref, prompt="other", feature_cache=disk)  # another key: computed
    assert len(calls) == 2
    with torch.no_grad():  # new weights -> new model revision -> a miss, never a stale hit
        next(tiny_pipe.reference_unet.parameters()).add_(0.1)
    tiny_pipe.clear_reference()
    tiny_pipe.set_reference(ref, feature_cache=disk)
    assert len(calls) == 3
