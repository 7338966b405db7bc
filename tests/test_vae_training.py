"""The demo VAE trainer: a few steps at 64 px learn, save/load round-trips, latents are 8x smaller."""

import json

import numpy as np
import pytest
import torch

from turbonext.synthetic.dataset import identity_seed
from turbonext.trainer.tiny_vae import (
    held_out_frames,
    held_out_identity_seeds,
    rescale_latents,
    to_tensor,
    train_tiny_vae,
    training_identities,
)


def test_held_out_identities_are_never_trained_on():
    held = held_out_identity_seeds(benchmark_identities=8, benchmark_seed=0)
    assert held == [identity_seed(0, i) for i in (5, 6, 7)]  # 1 validation + 2 test identities of 8
    # even when the VAE stream is asked for the benchmark's own held-out seeds' indices, they are dropped
    people = training_identities(range(64), benchmark_identities=8, benchmark_seed=0)
    seeds = {p.seed for p in people}
    assert not seeds & set(held)
    assert {identity_seed(0, i) for i in range(5)} <= seeds  # the benchmark's training identities are in


def test_train_tiny_vae_learns_and_round_trips(tmp_path):
    from diffusers import AutoencoderTiny

    torch.set_num_threads(1)
    out = tmp_path / "tiny_vae"
    report = train_tiny_vae(
        out, size=64, crop=None, steps=30, batch_size=4, lr=5e-3, seed=0, channels=(8, 8, 8, 8),
        encoder_blocks=(0, 1, 1, 1), decoder_blocks=(1, 1, 1, 0), identities=range(16),
        eval_per_motion=1, png_frames=2, progress=False,
    )
    history = report["loss_history"]
    assert len(history) == 30
    assert np.mean(history[-5:]) < 0.8 * np.mean(history[:5])

    for name in ("config.json", "diffusion_pytorch_model.safetensors", "vae_report.json", "reconstruction.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "vae_report.json").read_text())
    assert saved["held_out"]["latent_shape"] == [4, 8, 8]
    assert np.isfinite(saved["held_out"]["psnr"]) and saved["held_out"]["num_frames"] == 21  # 3 held-out identities (1 val, 2 test) x 7 motions

    loaded = AutoencoderTiny.from_pretrained(out).eval()
    assert loaded.config.scaling_factor == 1.0 and loaded.config.latent_channels == 4
    x = to_tensor(held_out_frames(64, per_motion=1)[:3])  # (3, 3, 64, 64) in [-1, 1]
    with torch.no_grad():
        z_a, z_b = report["vae"].encode(x).latents, loaded.encode(x).latents
        assert z_a.shape == (3, 4, 8, 8)
        assert torch.equal(z_a, z_b)
        assert torch.equal(report["vae"].decode(z_a).sample, loaded.decode(z_b).sample)


def test_rescale_latents_scales_the_encoder_exactly():
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    vae = AutoencoderTiny(encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4,
                          num_encoder_blocks=(0, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 0)).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latents  # (2, 4, 4, 4)
        small = z * 0.01  # where tanh(z/3)*3 is linear, decoding is unchanged
        before = vae.decode(small).sample
        rescale_latents(vae, 2.0)
        torch.testing.assert_close(vae.encode(x).latents, 2 * z)
        torch.testing.assert_close(vae.decode(2 * small).sample, before, atol=1e-4, rtol=1e-3)


def test_rejects_unequal_channels(tmp_path):
    with pytest.raises(ValueError, match="equal channels"):
        train_tiny_vae(tmp_path, size=64, steps=1, channels=(8, 16, 16, 16), progress=False)


def test_recolor_shuffles_and_scales_channels_and_keeps_black():
    from turbonext.trainer.tiny_vae import recolor

    frame = np.zeros((8, 8, 3), np.uint8)
    frame[2:6, 2:6] = (200, 40, 10)  # a reddish figure on black
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(40):
        out = recolor(frame, rng)
        assert out.dtype == np.uint8 and out.shape == frame.shape and out[0, 0].max() == 0  # black stays black
        seen.add(int(np.argmax(out[3, 3])))
    assert seen == {0, 1, 2}  # the dominant colour moves to every channel: colours the palette lacks
