"""Long videos by chaining windows (issue 16): ``pipe(..., long_video="chain")`` renders any length in windows of a
constant size, each carrying the previous window's last frames as context; ``max_frames`` bounds a call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_pose_frames, make_reference

from turbonext.pipelines.context_windows import chained_windows


STEPS = 2


def chain(pipe, poses, seed=0, **kwargs):
    kwargs.setdefault("window_size", 8)
    kwargs.setdefault("window_overlap", 4)
    return pipe(reference_image=None, pose_images=poses, num_inference_steps=STEPS, long_video="chain",
                output_type="latent", generator=torch.Generator().manual_seed(seed), **kwargs).frames


@pytest.fixture
def pipe(tiny_pipe):
    """The tiny pipeline with a trained-looking pose guider (a zero guider would make the poses irrelevant)."""
    torch.manual_seed(0)
    with torch.no_grad():
        torch.nn.init.normal_(tiny_pipe.pose_guider.zero_conv.weight, std=1.0)
    tiny_pipe.set_reference(make_reference())
    return tiny_pipe


class UNetSpy:
    """Records every main-UNet call's input sample and timestep."""

    def __init__(self, pipe):
        self.unet, self.calls = pipe.unet, []

    def __enter__(self):
        def hook(module, args, kwargs):
            sample = args[0] if args else kwargs["sample"]
            timestep = args[1] if len(args) > 1 else kwargs["timestep"]
            self.calls.append((sample.detach().clone(), torch.as_tensor(timestep).clone()))

        self.handle = self.unet.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_chained_windows_cover_every_frame_once_at_constant_size():
    assert chained_windows(20, 8, 4) == [(range(0, 8), 0), (range(4, 12), 4), (range(8, 16), 4), (range(12, 20), 4)]
    last = chained_windows(18, 8, 4)  # 2 frames left for the last window: it carries 6 of context
    assert last[-1] == (range(10, 18), 6) and all(len(w) == 8 for w, _ in last)
    for n in (1, 7, 8, 9, 31, 100):
        windows = chained_windows(n, 8, 3)
        new = [f for w, c in windows for f in list(w)[c:]]
        assert new == list(range(n)), n  # every frame is new in exactly one window, in order
        assert all(len(w) == min(n, 8) and c >= (3 if i else 0) for i, (w, c) in enumerate(windows))
    with pytest.raises(ValueError, match=r"context must be in \[0, window\)"):
        chained_windows(20, 8, 8)


def test_chain_renders_any_length_with_a_constant_window(pipe):
    poses = make_pose_frames(22)
    with UNetSpy(pipe) as spy:
        latents = chain(pipe, poses)
    assert latents.shape == (1, 4, 22, 8, 8)
    assert {tuple(sample.shape) for sample, _ in spy.calls} == {(1, 4, 8, 8, 8)}  # every call: one 8-frame window
    assert len(spy.calls) == STEPS * len(chained_windows(22, 8, 4)) == STEPS * 5  # new: 8, 4, 4, 4, 2
    assert torch.isfinite(latents).all()
    frames = pipe(reference_image=None, pose_images=poses, num_inference_steps=STEPS, long_video="chain",
                  window_size=8, window_overlap=4, output_type="np").frames[0]
    assert frames.shape == (22, 64, 64, 3)


def test_chain_is_deterministic_with_a_generator(pipe):
    poses = make_pose_frames(12)
    a, b, c = chain(pipe, poses, seed=3), chain(pipe, poses, seed=3), chain(pipe, poses, seed=4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().mean() > 1e-3


def test_context_frames_come_from_the_previous_window(pipe):
    """12 frames, windows [0, 8) and [4, 12): the second window's new frames 8-11 see poses 4-11 only. Another pose
    at frame 0 reaches them only through the context (frames 4-7, finished by the first window): were the context
    fresh noise, frames 8-11 would not change at all."""
    poses = make_pose_frames(12)
    moved = list(poses)
    moved[0] = np.ascontiguousarray(make_pose_frames(1, seed=7)[0][:, ::-1])
    change = (chain(pipe, poses) - chain(pipe, moved)).abs().mean(dim=(0, 1, 3, 4))  # per frame
    assert change[0] > 1e-3
    assert (change[8:] > 1e-5).all(), change

    # and directly: what the UNet is given as context is the first window's finished frames 4-7
    first = []

    def keep_first_window(p, step, t, kwargs):
        if step == STEPS - 1:  # the first window's last step: its finished frames 0-7
            first.append(kwargs["latents"].clone())
        return {}

    with UNetSpy(pipe) as spy:
        out = chain(pipe, poses, callback_on_step_end=keep_first_window)
    finished = first[0][:, :, 4:8].double()
    assert (out[:, :, 4:8] - first[0][:, :, 4:8]).abs().mean() > 0  # since cross-faded with the second window
    t = pipe.scheduler.timesteps[-1]  # the last step of the second window: noised to this level ("renoise")
    sample, timestep = spy.calls[-1]
    assert timestep.ndim == 0 and int(timestep) == int(t)
    a = pipe.scheduler.alphas_cumprod[int(t)].double()
    noise = (sample[:, :, :4].double() - a.sqrt() * finished) / (1 - a).sqrt()  # what was added to them
    assert abs(float(noise.mean())) < 0.15 and 0.8 < float(noise.std()) < 1.2  # standard normal noise
    assert float(torch.corrcoef(torch.stack([sample[:, :, :4].flatten().double(), finished.flatten()]))[0, 1]) > 0.3

    with UNetSpy(pipe) as spy:  # "clean": the finished latents themselves, labelled with timestep 0
        out = chain(pipe, poses, chain_context="clean")
    sample, timestep = spy.calls[-1]
    torch.testing.assert_close(sample[:, :, :4], out[:, :, 4:8], rtol=0, atol=0)  # (no cross-fade when clean)
    assert timestep.shape == (1, 8) and timestep[0, :4].eq(0).all() and timestep[0, 4:].eq(int(t)).all()


def test_chain_callback_sees_each_windows_new_frames(pipe):
    seen = []

    def callback(p, step, t, kwargs):
        seen.append((step, kwargs["latents"].shape[2]))
        return {}

    chain(pipe, make_pose_frames(12), callback_on_step_end=callback)
    assert seen == [(0, 8), (1, 8), (2, 4), (3, 4)]


def test_max_frames_says_the_limit_and_how_to_raise_it(pipe):
    poses = make_pose_frames(5)
    with pytest.raises(ValueError, match=r"5 frames, more than max_frames=4.*max_frames=5 \(or max_frames=None"):
        pipe(reference_image=None, pose_images=poses, num_inference_steps=1, max_frames=4, output_type="latent")
    assert pipe(reference_image=None, pose_images=poses, num_inference_steps=1, max_frames=None,
                output_type="latent").frames.shape[2] == 5
    with pytest.raises(ValueError, match="max_frames must be an integer >= 1"):
        pipe(reference_image=None, pose_images=poses, num_inference_steps=1, max_frames=0)
    with pytest.raises(ValueError, match="long_video must be one of"):
        pipe(reference_image=None, pose_images=poses, num_inference_steps=1, long_video="loop")
    with pytest.raises(ValueError, match="chain_context must be one of"):
        pipe(reference_image=None, pose_images=poses, num_inference_steps=1, long_video="chain",
             chain_context="fresh")


def test_long_stream_eval_scores_the_chained_clip(tmp_path):
    """``evaluate_long_stream(renderings=("offline", "chain"))`` renders both offline clips (no stream needed), with
    the windows asked for, and reports each one's seam at its own joins."""
    from dataclasses import dataclass

    from turbonext.evaluation.long_stream import chain_joins, evaluate_long_stream, format_long_stream
    from turbonext.synthetic import load_scene, write_dataset

    write_dataset(tmp_path, num_identities=3, num_val_identities=0, num_test_identities=2, motions=("walk", "wave"),
                  frames=12, size=64, progress=False)
    table = {}
    for scene in sorted(p.parent for p in tmp_path.rglob("keypoints.npy")):
        frames, poses, _ = load_scene(scene)
        table.update({np.asarray(p).tobytes(): f for f, p in zip(frames, poses)})

    @dataclass
    class Out:
        frames: list

    calls = []

    class Pipe:  # the true frame of every pose: no seam anywhere
        def __call__(self, reference_image, pose_images, num_inference_steps, generator, output_type, **kwargs):
            calls.append(kwargs)
            return Out([[table[np.asarray(p).tobytes()] for p in pose_images]])

    result = evaluate_long_stream(Pipe(), tmp_path, num_frames=12, renderings=("offline", "chain"), offline_window=6,
                                  offline_overlap=2, max_identities=1, scenes_per_identity=1, progress=False)
    assert calls[:2] == [dict(window_size=6, window_overlap=2),
                         dict(long_video="chain", window_size=6, window_overlap=2, chain_context=None)]
    assert set(result["per_frame"]) == {"offline", "chain"} and result["late_ratio"] == {}
    assert result["joins"]["chain"] == chain_joins(12, 6, 2) == [6, 10]
    assert result["summary"]["chain"]["all"]["iou"] == 1.0 and np.isfinite(result["summary"]["chain"]["seam"])
    text = format_long_stream(result)
    assert "chained windows" in text and "offline windows 6 / 2" in text
    with pytest.raises(ValueError, match="renderings must be distinct names"):
        evaluate_long_stream(Pipe(), tmp_path, renderings=("offline", "loop"), progress=False)
