"""The speed benchmark's baselines compute what they claim to (tiny random components, CPU)."""

import torch
from diffusers import LCMScheduler

from turbonext.benchmarks import stream as bench
from turbonext.pipelines.presets import build_random_pipeline


def test_literal_fifo_frames_are_each_a_fresh_denoise(monkeypatch):
    """(b) re-denoises the whole window for every new frame. LCMScheduler.step keeps a step index: without a
    reset per frame, every frame after the first would continue the previous frame's schedule (wrong output,
    same timing). Every frame of the loop must equal a denoise with a fresh scheduler."""
    pipe = build_random_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    assert isinstance(pipe.scheduler, LCMScheduler)  # the scheduler that keeps a step index
    pipe.set_reference(bench._pose_frames(1, 64, seed=1)[0])  # as run_stream_benchmark does
    calls = []
    original = bench.literal_fifo_frame

    def spy(pipe, latents, text, features, steps, generator=None):
        frame = original(pipe, latents, text, features, steps, generator=generator)
        calls.append((latents, text, features, frame))
        return frame

    monkeypatch.setattr(bench, "literal_fifo_frame", spy)
    steps = 2
    row = bench.bench_literal_fifo(pipe, 64, steps, window=8, new_frames=2)
    assert row["fps"] > 0 and len(calls) == 3  # warm-up + 2 timed frames
    latents, text, features, first = calls[0]
    assert first.shape[-2:] == (64, 64) and first.numel() == 3 * 64 * 64  # one decoded frame
    for _, _, _, frame in calls[1:]:  # the same latents every frame: the same output every frame
        torch.testing.assert_close(frame, first, rtol=0, atol=0)

    # a fresh denoise, written out here: a new scheduler, the same noise between steps
    scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(0)
    x = latents
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = pipe.unet(x, t, encoder_hidden_states=text, pose_features=features, return_dict=False)[0]
            x = scheduler.step(eps, t, x, generator=generator, return_dict=False)[0]
        fresh = pipe.decode_latents(x[:, :, -1:]).cpu()
    torch.testing.assert_close(first, fresh, rtol=0, atol=1e-6)
