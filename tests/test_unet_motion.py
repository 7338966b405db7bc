"""TurboNextUNetMotionModel against diffusers' own modules.

Oracles: diffusers' ``UNetMotionModel.forward`` (the parent's, on the same weights), diffusers'
``Timesteps``/``TimestepEmbedding`` applied to one scalar timestep at a time, and single-frame calls of
the same UNet once its motion modules are made the identity (then frames do not interact).
Frames are b-major: frame f of video b is row b*F + f of every (B*F, ...) tensor.
"""

import contextlib
import functools

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.embeddings import TimestepEmbedding
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D, UNetMotionModel

from turbonext.models.configs import TINY_UNET, build_components
from turbonext.models.unet_motion import TurboNextUNetMotionModel


B, F, H, W = 2, 3, 8, 8
COND_DIM = 16  # time_cond_proj_dim of the guidance-embedding UNet (RAIN's LCM UNet has 512)
# all different, so that any mix-up of frames, videos or their order shows
TIMESTEPS = torch.tensor([[999, 500, 1], [750, 250, 20]])  # (B, F)


@functools.cache
def tiny_components(motion_mid_block: bool) -> dict:
    return build_components("tiny", seed=0, motion_mid_block=motion_mid_block)


def make_unet(motion_mid_block: bool = False, time_cond_proj_dim: int | None = None):
    """A new tiny TurboNextUNetMotionModel (random weights, real motion modules); also returns its UNet2D.
    from_unet2d copies the weights, so tests may change the UNet freely."""
    comps = tiny_components(motion_mid_block)
    unet2d = comps["unet2d"]
    if time_cond_proj_dim is not None:
        torch.manual_seed(1)
        unet2d = UNet2DConditionModel(**TINY_UNET, time_cond_proj_dim=time_cond_proj_dim)
    return TurboNextUNetMotionModel.from_unet2d(unet2d, comps["motion_adapter"]).eval(), unet2d


def make_inputs(height: int = H, width: int = W, seed: int = 0):
    """sample (B, 4, F, h, w), text (B*F, 5, 32), pose features (B*F, 32, h, w): different in every frame."""
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randn(B, 4, F, height, width, generator=gen)
    text = torch.randn(B * F, 5, TINY_UNET["cross_attention_dim"], generator=gen)
    pose = torch.randn(B * F, TINY_UNET["block_out_channels"][0], height, width, generator=gen)
    return sample, text, pose


def diffusers_embedding(unet, t, cond=None, time_embedding=None) -> torch.Tensor:
    """diffusers' embedding of ONE scalar timestep (and guidance condition (1, D)), shape (1, D)."""
    time_embedding = time_embedding or unet.time_embedding
    return time_embedding(unet.time_proj(torch.as_tensor(t).reshape(1)), cond)


def per_frame_embeddings(unet, timesteps, cond=None, time_embedding=None) -> torch.Tensor:
    """(B*F, D): row b*F + f is diffusers' embedding of timesteps[b, f] (cond: (B*F, D') rows)."""
    rows = []
    for b in range(timesteps.shape[0]):
        for f in range(timesteps.shape[1]):
            r = b * timesteps.shape[1] + f
            c = None if cond is None else cond[r : r + 1]
            rows.append(diffusers_embedding(unet, timesteps[b, f], c, time_embedding))
    return torch.cat(rows)


@contextlib.contextmanager
def resnet_temb(unet, record: list | None = None, replace: torch.Tensor | None = None):
    """Record (and/or replace) the time embedding every ResnetBlock2D receives: the only place it is used."""

    def hook(module, args, kwargs):
        if "temb" in kwargs:
            temb = kwargs["temb"]
            if replace is not None:
                kwargs["temb"] = replace
        else:  # UNetMidBlock2DCrossAttn calls resnet(hidden_states, temb)
            temb = args[1]
            if replace is not None:
                args = (args[0], replace, *args[2:])
        if record is not None:
            record.append(temb)
        return args, kwargs

    resnets = [m for m in unet.modules() if isinstance(m, ResnetBlock2D)]
    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in resnets]
    try:
        yield len(resnets)
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def add_after_conv_in(unet, pose):
    """What pose_features does, done to diffusers' own forward: add pose after conv_in."""
    handle = unet.conv_in.register_forward_hook(lambda module, args, out: out + pose)
    try:
        yield
    finally:
        handle.remove()


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


# --- per-frame timesteps ---------------------------------------------------------------------------------


@torch.no_grad()
def test_per_frame_timesteps_equal_single_frame_calls_when_motion_modules_are_identity():
    """Zeroed motion-module output projections make every motion module the identity, so frames do not
    interact and a joint call with per-frame timesteps (B, F) must equal B*F one-frame calls, each with
    its own scalar timestep (and its own text and pose rows)."""
    unet, _ = make_unet()
    motion = [m for m in unet.modules() if isinstance(m, AnimateDiffTransformer3D)]
    assert motion
    for m in motion:
        torch.nn.init.zeros_(m.proj_out.weight)
        torch.nn.init.zeros_(m.proj_out.bias)
    sample, text, pose = make_inputs()
    joint = unet(sample, TIMESTEPS, encoder_hidden_states=text, pose_features=pose).sample
    for b in range(B):
        for f in range(F):
            r = b * F + f
            single = unet(sample[b : b + 1, :, f : f + 1], TIMESTEPS[b, f], encoder_hidden_states=text[r : r + 1],
                          pose_features=pose[r : r + 1]).sample
            torch.testing.assert_close(joint[b : b + 1, :, f : f + 1], single, rtol=1e-4, atol=1e-5,
                                       msg=lambda m, b=b, f=f: f"video {b} frame {f}: {m}")


@pytest.mark.parametrize("motion_mid_block", [False, True])
@torch.no_grad()
def test_per_frame_timesteps_with_motion_equal_diffusers_forward_fed_each_frames_embedding(motion_mid_block):
    """With real motion weights, a (B, F) call equals diffusers' own UNetMotionModel.forward on the same
    weights whose resnets are handed, row b*F + f, diffusers' embedding of the scalar timesteps[b, f]."""
    unet, _ = make_unet(motion_mid_block)
    sample, text, pose = make_inputs()
    expected_emb = per_frame_embeddings(unet, TIMESTEPS)  # (B*F, 128)

    seen = []
    with resnet_temb(unet, record=seen) as num_resnets:
        got = unet(sample, TIMESTEPS, encoder_hidden_states=text, pose_features=pose).sample
    assert len(seen) == num_resnets
    for temb in seen:  # every resnet got frame f of video b's own embedding in row b*F + f
        torch.testing.assert_close(temb, expected_emb, rtol=1e-5, atol=1e-5)

    with resnet_temb(unet, replace=expected_emb), add_after_conv_in(unet, pose):
        oracle = UNetMotionModel.forward(unet, sample, 0, encoder_hidden_states=text).sample
    torch.testing.assert_close(got, oracle, rtol=1e-4, atol=1e-5)

    # the timesteps of frames 1.. matter (the same call with frame 0's timestep everywhere differs) ...
    frame0 = unet(sample, TIMESTEPS[:, :1].expand(B, F), encoder_hidden_states=text, pose_features=pose).sample
    assert max_diff(got, frame0) > 1e-3
    # ... and frames interact here (so the single-frame oracle above needs the motion modules zeroed)
    alone = unet(sample[:, :, :1], TIMESTEPS[:, :1], encoder_hidden_states=text[::F], pose_features=pose[::F]).sample
    assert max_diff(got[:, :, :1], alone) > 1e-3


@pytest.mark.parametrize("motion_mid_block", [False, True])
@torch.no_grad()
def test_scalar_and_per_video_timesteps_equal_diffusers_forward(motion_mid_block):
    """Where diffusers' own forward applies (one timestep per video, no pose), the override equals it,
    including residuals (ControlNet) and a latent size that is not a multiple of the upsampling factor."""
    unet, _ = make_unet(motion_mid_block)
    sample, text, _ = make_inputs(height=9, width=7)
    shapes = []  # the shapes of the down residuals, from a first call
    handles = [unet.conv_in.register_forward_hook(lambda m, a, out: shapes.append(out.shape))]
    handles += [blk.register_forward_hook(lambda m, a, out: shapes.extend(r.shape for r in out[1]))
                for blk in unet.down_blocks]
    mid = []
    handles.append(unet.mid_block.register_forward_hook(lambda m, a, out: mid.append(out.shape)))
    unet(sample, 10, encoder_hidden_states=text)
    for h in handles:
        h.remove()
    gen = torch.Generator().manual_seed(5)
    residuals = dict(
        down_block_additional_residuals=tuple(0.1 * torch.randn(s, generator=gen) for s in shapes),
        mid_block_additional_residual=0.1 * torch.randn(mid[0], generator=gen),
    )
    for t, extra in ((700, {}), (700.5, {}), (torch.tensor(300), residuals), (torch.tensor([900, 40]), residuals)):
        got = unet(sample, t, encoder_hidden_states=text, **extra).sample
        want = UNetMotionModel.forward(unet, sample, t, encoder_hidden_states=text, **extra).sample
        assert got.shape == (B, 4, F, 9, 7)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_timestep_shapes():
    unet, _ = make_unet()
    sample, text, pose = make_inputs()

    def run(t):
        return unet(sample, t, encoder_hidden_states=text, pose_features=pose).sample

    want = run(torch.full((B, F), 321))
    for t in (321, torch.tensor(321), torch.tensor([321]), torch.tensor([321, 321]), torch.full((1, F), 321)):
        torch.testing.assert_close(run(t), want, rtol=1e-5, atol=1e-6)
    for bad in (torch.zeros(B + 1), torch.zeros(F), torch.zeros(B, F + 1), torch.zeros(B, F, 1)):
        with pytest.raises(ValueError, match="timestep must be"):
            run(bad)


# --- timestep_cond (guidance-scale embedding) -----------------------------------------------------------


@torch.no_grad()
def test_timestep_cond_per_video_is_repeated_per_frame_and_matches_diffusers_timestep_embedding():
    unet, unet2d = make_unet(time_cond_proj_dim=COND_DIM)
    assert unet.config.time_cond_proj_dim == COND_DIM  # from_unet2d carries the config ...
    torch.testing.assert_close(unet.time_embedding.cond_proj.weight, unet2d.time_embedding.cond_proj.weight)  # and weights
    # diffusers' TimestepEmbedding with cond_proj_dim, built afresh and given the same weights
    lin = unet.time_embedding.linear_1
    reference = TimestepEmbedding(lin.in_features, lin.out_features, cond_proj_dim=COND_DIM)
    reference.load_state_dict(unet2d.time_embedding.state_dict())
    sample, text, pose = make_inputs()
    gen = torch.Generator().manual_seed(3)
    cond = torch.randn(B, COND_DIM, generator=gen)  # one guidance embedding per video

    def run(t, c):
        seen = []
        with resnet_temb(unet, record=seen):
            out = unet(sample, t, encoder_hidden_states=text, timestep_cond=c, pose_features=pose).sample
        return out, seen[0]

    per_video, emb = run(TIMESTEPS, cond)
    expected = per_frame_embeddings(unet, TIMESTEPS, cond.repeat_interleave(F, 0), reference)  # row b*F+f: cond[b]
    torch.testing.assert_close(emb, expected, rtol=1e-5, atol=1e-5)
    per_frame, _ = run(TIMESTEPS, cond.repeat_interleave(F, 0))  # (B*F, D), b-major
    torch.testing.assert_close(per_video, per_frame, rtol=1e-5, atol=1e-6)
    assert max_diff(per_video, run(TIMESTEPS, None)[0]) > 1e-3  # the condition is used

    # (B*F, D) with a different condition in every frame
    cond_frames = torch.randn(B * F, COND_DIM, generator=gen)
    _, emb = run(TIMESTEPS, cond_frames)
    torch.testing.assert_close(emb, per_frame_embeddings(unet, TIMESTEPS, cond_frames, reference),
                               rtol=1e-5, atol=1e-5)

    # diffusers' own forward takes a (B, D) condition with one timestep per video: the same result
    got = unet(sample, 500, encoder_hidden_states=text, timestep_cond=cond).sample
    want = UNetMotionModel.forward(unet, sample, 500, encoder_hidden_states=text, timestep_cond=cond).sample
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_timestep_cond_wrong_shapes_and_unets_without_cond_proj_raise():
    unet, _ = make_unet(time_cond_proj_dim=COND_DIM)
    sample, text, _ = make_inputs()
    for shape in ((B + 1, COND_DIM), (B, COND_DIM + 1), (B * F + 1, COND_DIM), (B, F, COND_DIM), (COND_DIM,)):
        with pytest.raises(ValueError, match="timestep_cond must be"):
            unet(sample, 10, encoder_hidden_states=text, timestep_cond=torch.zeros(shape))
    plain, _ = make_unet()
    with pytest.raises(ValueError, match="time_cond_proj_dim"):
        plain(sample, 10, encoder_hidden_states=text, timestep_cond=torch.zeros(B, COND_DIM))


# --- added_cond_kwargs ----------------------------------------------------------------------------------


@torch.no_grad()
def test_added_cond_kwargs_raise_instead_of_being_dropped():
    unet, _ = make_unet()
    sample, text, _ = make_inputs()
    with pytest.raises(ValueError, match="added_cond_kwargs"):
        unet(sample, 10, encoder_hidden_states=text, added_cond_kwargs={"text_embeds": torch.zeros(B, 32)})
    want = unet(sample, 10, encoder_hidden_states=text).sample
    torch.testing.assert_close(unet(sample, 10, encoder_hidden_states=text, added_cond_kwargs={}).sample, want)


# --- cross_attention_kwargs -----------------------------------------------------------------------------


class ProbeProcessor(AttnProcessor2_0):
    """diffusers' attention, logging (its layer name, the ``probe`` entry of cross_attention_kwargs) per call."""

    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, probe=None):
        self.log.append((self.name, probe))
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


@pytest.mark.parametrize("motion_mid_block", [False, True])
@torch.no_grad()
def test_cross_attention_kwargs_reach_every_spatial_attention_in_down_mid_and_up_blocks(motion_mid_block):
    unet, _ = make_unet(motion_mid_block)
    log = []
    spatial = [n for n, m in unet.named_modules() if isinstance(m, Attention) and "motion_modules" not in n]
    for name in spatial:
        unet.get_submodule(name).set_processor(ProbeProcessor(name, log))
    attn1 = [n for n in spatial if n.endswith("attn1")]
    for part in ("down_blocks.", "mid_block.", "up_blocks."):
        assert any(n.startswith(part) for n in attn1), part
    sample, text, pose = make_inputs()
    probe = object()  # stands for the reference attention's per-call state
    unet(sample, TIMESTEPS, encoder_hidden_states=text, pose_features=pose, cross_attention_kwargs={"probe": probe})
    assert {name for name, _ in log} == set(spatial)  # every spatial attention (attn1 and attn2) was called ...
    missing = [name for name, got in log if got is not probe]
    assert not missing, f"cross_attention_kwargs did not reach {missing}"  # ... and got the entry every time


@torch.no_grad()
def test_cross_attention_kwargs_scale_scales_lora_layers_for_the_call():
    """As in diffusers' forward (``apply_lora_scale``): ``{"scale": s}`` scales PEFT LoRA layers for one call."""
    from peft import LoraConfig

    unet, _ = make_unet()
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))  # random B: the adapter changes the output
    sample, text, pose = make_inputs()

    def run(**kwargs):
        return unet(sample, TIMESTEPS, encoder_hidden_states=text, pose_features=pose, **kwargs).sample

    full = run()
    unet.disable_adapters()
    base = run()
    unet.enable_adapters()
    assert max_diff(full, base) > 1e-4
    kwargs = {"scale": 0.0}
    torch.testing.assert_close(run(cross_attention_kwargs=kwargs), base, rtol=1e-5, atol=1e-6)
    assert kwargs == {"scale": 0.0}  # the caller's dict is left alone
    half = run(cross_attention_kwargs={"scale": 0.5})
    assert max_diff(half, base) > 1e-5 and max_diff(half, full) > 1e-5
    torch.testing.assert_close(run(), full)  # unscaled again after the call
