"""Training's ``reference_focus``: a key mask that lets the reference attention read only the person's tokens."""

import pytest
import torch
from diffusers.models.attention_processor import Attention

from turbonext.models.reference_attention import ReferenceReadProcessor, token_mask
from turbonext.trainer.config import TrainConfig, load_config
from turbonext.trainer.loop import compute_loss, reference_focus_mask
from turbonext.trainer.training_model import TrainingModel


def test_token_mask_maps_a_region_onto_each_layers_grid():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 0:16, 48:64] = 1  # the top-right 16x16 corner
    assert token_mask(mask, 16).view(4, 4).nonzero().tolist() == [[0, 3]]
    assert token_mask(mask, 64).view(8, 8)[0:2, 6:8].all() and token_mask(mask, 64).sum() == 4
    wide = torch.zeros(1, 1, 32, 64)
    wide[..., :, :8] = 1
    assert token_mask(wide, 8).view(2, 4).tolist() == [[True, False, False, False], [True, False, False, False]]
    assert token_mask(torch.zeros(2, 1, 64, 64), 16).all()  # nobody there: read everything, never nothing
    with pytest.raises(ValueError, match="token grid"):
        token_mask(mask, 15)


def test_a_masked_read_equals_reading_only_the_kept_reference_tokens():
    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    hidden = torch.randn(3, 6, 8)  # 3 frames of 6 own tokens
    ref_tokens = torch.randn(1, 4, 8)  # a 2x2 reference grid
    k, v = attn.to_k(ref_tokens), attn.to_v(ref_tokens)
    region = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])  # keeps tokens 0 and 2
    masked = ReferenceReadProcessor._read(attn, hidden, (k, v), region)
    subset = ReferenceReadProcessor._read(attn, hidden, (k[:, [0, 2]], v[:, [0, 2]]))
    torch.testing.assert_close(masked, subset, atol=1e-6, rtol=1e-5)
    everything = ReferenceReadProcessor._read(attn, hidden, (k, v))
    torch.testing.assert_close(ReferenceReadProcessor._read(attn, hidden, (k, v), torch.ones(1, 1, 2, 2)), everything)
    assert (masked - everything).abs().max() > 1e-3


def test_the_training_model_applies_each_samples_mask(tiny_pipe):
    torch.manual_seed(0)
    model = TrainingModel(tiny_pipe)
    noisy = torch.randn(2, 4, 2, 8, 8)
    ref_latents = torch.randn(2, 4, 8, 8) * 2
    text = tiny_pipe.encode_prompt("", torch.device("cpu")).expand(2, -1, -1)
    poses = torch.rand(2, 2, 3, 64, 64)
    timesteps = torch.tensor([500, 700])
    plain = model(noisy, timesteps, ref_latents, text, poses)
    torch.testing.assert_close(model(noisy, timesteps, ref_latents, text, poses, ref_key_mask=torch.ones(2, 1, 8, 8)),
                               plain)
    region = torch.zeros(2, 1, 8, 8)
    region[0, :, :4, :4] = 1
    region[1] = 1
    focused = model(noisy, timesteps, ref_latents, text, poses, ref_key_mask=region)
    assert (focused[0] - plain[0]).abs().max() > 1e-4  # sample 0 reads a quarter of its reference
    torch.testing.assert_close(focused[1], plain[1])  # sample 1 reads all of its own
    one = model(noisy[:1], timesteps[:1], ref_latents[:1], text[:1], poses[:1], ref_key_mask=region[:1])
    torch.testing.assert_close(focused[:1], one, atol=1e-5, rtol=1e-5)


def test_reference_focus_masks_the_person_with_the_configured_probability():
    pose = torch.zeros(4, 3, 64, 64)
    pose[:, 0, 20:44, 30:34] = 1.0  # a vertical limb in the middle
    assert reference_focus_mask(pose, (8, 8), 0.0, 0.06).all()
    focused = reference_focus_mask(pose, (8, 8), 1.0, 0.06)
    assert focused.shape == (4, 1, 8, 8) and focused.dtype == torch.bool
    assert focused[:, 0, 3, 3:5].all() and not focused[:, 0, 0, 0].any()  # the limb's cells, not the corner
    torch.manual_seed(0)
    drawn = reference_focus_mask(pose[:1].expand(400, -1, -1, -1), (8, 8), 0.5, 0.06)
    share = (~drawn.flatten(1).all(dim=1)).float().mean()
    assert 0.4 < float(share) < 0.6


def test_compute_loss_hands_the_model_the_focus_mask_only_when_asked(tiny_pipe):
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler.from_config(tiny_pipe.scheduler.config)
    text = tiny_pipe.encode_prompt("", "cpu")
    pose = torch.zeros(1, 3, 64, 64)
    pose[:, :, 10:50, 30:34] = 1.0
    batch = {"frames": torch.rand(1, 2, 3, 64, 64), "poses": torch.rand(1, 2, 3, 64, 64),
             "reference": torch.rand(1, 3, 64, 64), "reference_pose": pose}
    seen = {}

    def model(noisy, timesteps, ref_latents, text, poses, ref_poses, **kwargs):
        seen.clear()
        seen.update(kwargs)
        return torch.zeros_like(noisy)

    compute_loss(batch, tiny_pipe, model, noise_scheduler, text, TrainConfig(num_frames=2).validate())
    assert seen == {}
    compute_loss(batch, tiny_pipe, model, noise_scheduler, text, TrainConfig(num_frames=2, reference_focus=1.0).validate())
    mask = seen["ref_key_mask"]
    assert mask.shape == (1, 1, 8, 8) and mask.any() and not mask.all()
    assert load_config(None, ["reference_focus=0.5"]).reference_focus == 0.5
    with pytest.raises(ValueError, match="reference_focus"):
        load_config(None, ["reference_focus=1.5"])
