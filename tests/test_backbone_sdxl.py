"""SDXL backbone through from_components (issue 16), on tiny components saved in the real Hub repos' layouts
(stabilityai/stable-diffusion-xl-base-1.0, guoyww/animatediff-motion-adapter-sdxl-beta, madebyollin/taesdxl):
two text encoders, SDXL's added conditioning (pooled text + size/crop time ids) in BOTH UNets, clips, streams,
save/load, the fp16-overflowing VAE, and clear errors for parts of another backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_pose_frames, make_reference, write_tiny_lora
from diffusers import AutoencoderKL, LCMScheduler, MotionAdapter, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.models.unets.unet_motion_model import UNetMotionModel
from transformers import CLIPTextModelWithProjection

from turbonext import TurboNextPipeline
from turbonext.loaders.assemble import _backbone_defaults
from turbonext.loaders.hub import (
    BACKBONE_DEFAULT,
    DEFAULT_MOTION_ADAPTER,
    DEFAULT_SDXL_LCM_LORA,
    DEFAULT_SDXL_MOTION_ADAPTER,
    DEFAULT_SDXL_TINY_VAE,
    DEFAULT_TINY_VAE,
)
from turbonext.models.configs import TINY_SDXL_TEXT_2_HIDDEN, TINY_SDXL_UNET, build_backbone_components
from turbonext.models.unet_motion import TurboNextUNetMotionModel


def build(tiny_hub, **overrides) -> TurboNextPipeline:
    kwargs = dict(base=tiny_hub["base_sdxl"], motion_adapter=tiny_hub["motion_adapter_sdxl"],
                  tiny_vae=tiny_hub["tiny_vae_sdxl"], lcm_lora=None)
    pipe = TurboNextPipeline.from_components(**{**kwargs, **overrides})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def sdxl_pipe(tiny_hub):
    return build(tiny_hub)


def render(pipe, output_type="latent", frames=3, **kwargs):
    kwargs.setdefault("reference_image", make_reference())
    out = pipe(pose_images=make_pose_frames(frames), num_inference_steps=2, output_type=output_type,
               generator=torch.Generator().manual_seed(0), **kwargs).frames
    return out if output_type == "latent" else out[0]


class Recorder:
    """Records the ``added_cond_kwargs`` every forward of a module receives."""

    def __init__(self, module):
        self.calls = []
        self.handle = module.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.calls.append(kwargs.get("added_cond_kwargs"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# ------------------------------------------------------------------------------------------ layouts, assembly
def test_tiny_layouts_are_the_real_repos_layouts(tiny_hub):
    base = Path(tiny_hub["base_sdxl"])
    assert base.name == "stable-diffusion-xl-base-1.0"
    assert {p.name for p in base.iterdir()} == {"unet", "vae", "text_encoder", "text_encoder_2", "tokenizer",
                                                "tokenizer_2", "scheduler", "model_index.json"}
    assert json.loads((base / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    vae = json.loads((base / "vae" / "config.json").read_text())
    assert vae["scaling_factor"] == 0.13025 and vae["force_upcast"] is True
    assert json.loads((base / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == "EulerDiscreteScheduler"
    adapter = json.loads((Path(tiny_hub["motion_adapter_sdxl"]) / "config.json").read_text())
    assert adapter["_class_name"] == "MotionAdapter" and adapter["use_motion_mid_block"] is False
    assert Path(tiny_hub["motion_adapter_sdxl"]).name == "animatediff-motion-adapter-sdxl-beta"
    assert Path(tiny_hub["tiny_vae_sdxl"]).name == "taesdxl"
    # diffusers' own SDXL pipeline reads the base as it reads the real repo
    reference = StableDiffusionXLPipeline.from_pretrained(base)
    assert isinstance(reference.text_encoder_2, CLIPTextModelWithProjection)


def test_from_components_builds_an_sdxl_pipeline(sdxl_pipe, tiny_hub):
    pipe = sdxl_pipe
    assert pipe.text_time_conditioned
    assert isinstance(pipe.text_encoder_2, CLIPTextModelWithProjection) and pipe.tokenizer_2 is not None
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert pipe.reference_unet.config.addition_embed_type == "text_time"
    assert pipe.unet.config.cross_attention_dim == 32 + TINY_SDXL_TEXT_2_HIDDEN  # both encoders side by side
    # the pose guider's features have the width of the UNet's conv_in (320 at full size)
    assert pipe.pose_guider.config.out_channels == pipe.unet.conv_in.out_channels == pipe.reference_unet.conv_in.out_channels
    # SDXL's added embedding carries the base weights (diffusers' from_unet2d would leave it random)
    base_unet = UNet2DConditionModel.from_pretrained(tiny_hub["base_sdxl"], subfolder="unet")
    for name, param in base_unet.add_embedding.state_dict().items():
        torch.testing.assert_close(pipe.unet.add_embedding.state_dict()[name], param)
    # the motion modules come from the SDXL adapter
    adapter = MotionAdapter.from_pretrained(tiny_hub["motion_adapter_sdxl"])
    torch.testing.assert_close(pipe.unet.down_blocks[1].motion_modules[0].proj_in.weight,
                               adapter.down_blocks[1].motion_modules[0].proj_in.weight)
    assert pipe.encoder_vae.config.scaling_factor == 0.13025 and pipe.encoder_vae.config.force_upcast


def test_sdxl_defaults_are_sdxl_repos():
    assert _backbone_defaults(True, BACKBONE_DEFAULT, BACKBONE_DEFAULT, BACKBONE_DEFAULT) == (
        DEFAULT_SDXL_MOTION_ADAPTER, DEFAULT_SDXL_TINY_VAE, DEFAULT_SDXL_LCM_LORA)
    assert _backbone_defaults(False, BACKBONE_DEFAULT, BACKBONE_DEFAULT, None)[:2] == (DEFAULT_MOTION_ADAPTER,
                                                                                      DEFAULT_TINY_VAE)
    assert _backbone_defaults(True, "my/adapter", None, None) == ("my/adapter", None, None)  # given ones stay


# ------------------------------------------------------------------------------------------ clips and streams
def test_sdxl_renders_clips_and_streams(sdxl_pipe):
    clip = render(sdxl_pipe, output_type="np")
    assert clip.shape == (3, 64, 64, 3) and np.isfinite(clip).all()
    for schedule in ("uniform", "staggered"):
        session = sdxl_pipe.stream(reference_image=make_reference(), num_inference_steps=2, window=4,
                                   output_type="np", schedule=schedule, generator=torch.Generator().manual_seed(0))
        with Recorder(sdxl_pipe.unet) as unet_calls:
            frames = [f for pose in make_pose_frames(7, seed=1) for f in session.step(pose)] + session.flush()
        assert len(frames) == 7 and all(np.isfinite(f).all() and f.shape == (64, 64, 3) for f in frames)
        time_ids = [c["time_ids"].tolist() for c in unet_calls.calls]
        assert time_ids and all(t == [[64, 64, 0, 0, 64, 64]] for t in time_ids)  # every stream call, frame size
        assert session.unet is sdxl_pipe.unet  # the session passes the added conditioning itself: no wrapper


def test_sdxl_streams_with_classifier_free_guidance(sdxl_pipe):
    session = sdxl_pipe.stream(reference_image=make_reference(), num_inference_steps=2, window=4, output_type="np",
                               guidance_scale=2.0)
    with Recorder(sdxl_pipe.unet) as unet_calls:
        frames = [f for pose in make_pose_frames(4) for f in session.step(pose)] + session.flush()
    assert len(frames) == 4
    first = unet_calls.calls[0]["text_embeds"]  # [unconditional (empty prompt); conditional] rows
    assert first.shape == (2, TINY_SDXL_TEXT_2_HIDDEN)
    assert all(c["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]] * 2 for c in unet_calls.calls)
    clip = render(sdxl_pipe, output_type="np", guidance_scale=2.0, prompt="a dancer", negative_prompt="blurry")
    assert np.isfinite(clip).all()


def test_a_streams_added_conditioning_follows_its_prompt_and_frame_size(sdxl_pipe):
    """Made once per session, and again for a new prompt (set_reference) or new frames' size (after reset)."""
    session = sdxl_pipe.stream(reference_image=make_reference(), num_inference_steps=1, window=2, frames_per_level=1,
                               output_type="np")
    with Recorder(sdxl_pipe.unet) as unet_calls:
        for pose in make_pose_frames(2):
            session.step(pose)
        session.set_reference(make_reference(), prompt="a dancer")
        session.step(make_pose_frames(1)[0])
        session.reset()
        session.step(make_pose_frames(1, size=32)[0])
    calls = unet_calls.calls
    assert len(calls) == 4 and calls[0] is calls[1]  # the same tensors at every call (made once)
    empty, dancer = (sdxl_pipe.encode_pooled_prompt(p, sdxl_pipe.device) for p in ("", "a dancer"))
    assert torch.equal(calls[0]["text_embeds"], empty) and torch.equal(calls[2]["text_embeds"], dancer)
    assert [c["time_ids"].tolist() for c in calls] == [[[64, 64, 0, 0, 64, 64]]] * 3 + [[[32, 32, 0, 0, 32, 32]]]


def test_sdxl_makes_a_person_from_text(sdxl_pipe):
    sdxl_pipe.clear_reference()
    with Recorder(sdxl_pipe.unet) as unet_calls:
        out = sdxl_pipe(prompt="a dancer", pose_images=make_pose_frames(2), num_inference_steps=2,
                        output_type="np", generator=torch.Generator().manual_seed(0))
    assert out.reference_image.size == (64, 64) and np.isfinite(out.frames).all()
    assert unet_calls.calls[0]["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]]  # the person's frame, then the clip
    with Recorder(sdxl_pipe.unet) as unet_calls:  # with guidance: [negative; prompt] rows
        person = sdxl_pipe.generate_reference("a dancer", height=64, width=64, num_inference_steps=2,
                                              guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert person.size == (64, 64) and unet_calls.calls[0]["text_embeds"].shape == (2, TINY_SDXL_TEXT_2_HIDDEN)


# ------------------------------------------------------------------------------------------ added conditioning
def test_time_ids_reach_both_unets_and_change_the_output(sdxl_pipe):
    with Recorder(sdxl_pipe.reference_unet) as ref_calls, Recorder(sdxl_pipe.unet) as unet_calls:
        default = render(sdxl_pipe)
        moved = render(sdxl_pipe, original_size=(128, 96), crops_coords_top_left=(8, 4), target_size=(64, 64))
    assert [c["time_ids"].tolist() for c in ref_calls.calls] == [[[64, 64, 0, 0, 64, 64]], [[128, 96, 8, 4, 64, 64]]]
    assert unet_calls.calls[0]["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]]
    assert unet_calls.calls[-1]["time_ids"].tolist() == [[128, 96, 8, 4, 64, 64]]
    pooled = sdxl_pipe.encode_pooled_prompt("", sdxl_pipe.device)
    torch.testing.assert_close(unet_calls.calls[-1]["text_embeds"], pooled)
    assert not torch.allclose(default, moved)


def test_the_reference_tokens_depend_on_the_added_conditioning(sdxl_pipe):
    image = make_reference()
    plain = {k: v.clone() for k, v in sdxl_pipe.set_reference(image).tokens.items()}
    resized = sdxl_pipe.set_reference(image, original_size=(256, 256)).tokens
    prompted = sdxl_pipe.set_reference(image, prompt="a dancer").tokens
    changed = [k for k in plain if not torch.allclose(plain[k], resized[k])]
    assert changed and any(not torch.allclose(plain[k], prompted[k]) for k in plain)
    again = sdxl_pipe.set_reference(image).tokens  # the same inputs: the same tokens
    assert all(torch.equal(plain[k], again[k]) for k in plain)


def test_prompt_embeds_need_their_pooled_embeds(sdxl_pipe):
    device = sdxl_pipe.device
    embeds, pooled = sdxl_pipe.encode_prompt("a dancer", device), sdxl_pipe.encode_pooled_prompt("a dancer", device)
    assert embeds.shape == (1, 77, 32 + TINY_SDXL_TEXT_2_HIDDEN) and pooled.shape == (1, TINY_SDXL_TEXT_2_HIDDEN)
    with pytest.raises(ValueError, match="pooled_prompt_embeds together"):
        render(sdxl_pipe, prompt_embeds=embeds)
    from_embeds = render(sdxl_pipe, prompt_embeds=embeds, pooled_prompt_embeds=pooled)
    torch.testing.assert_close(from_embeds, render(sdxl_pipe, prompt="a dancer"))
    with pytest.raises(ValueError, match="original_size must be two"):
        render(sdxl_pipe, original_size=(64,))


def test_sd15_pipelines_refuse_sdxl_conditioning(tiny_pipe):
    with pytest.raises(ValueError, match="SDXL's added conditioning"):
        render(tiny_pipe, original_size=(128, 128))
    with pytest.raises(ValueError, match="SDXL's added conditioning"):
        tiny_pipe.encode_pooled_prompt("", tiny_pipe.device)


@torch.no_grad()
def test_the_motion_unet_embeds_added_conditioning_as_diffusers_does():
    """Per-video time ids and pooled text, repeated over frames, equal diffusers' UNetMotionModel.forward."""
    comps = build_backbone_components("sdxl", "tiny", seed=3)
    unet = TurboNextUNetMotionModel.from_unet2d(comps["unet2d"], comps["motion_adapter"]).eval()
    gen = torch.Generator().manual_seed(0)
    batch, frames = 2, 3
    sample = torch.randn(batch, 4, frames, 8, 8, generator=gen)
    text = torch.randn(batch * frames, 5, TINY_SDXL_UNET["cross_attention_dim"], generator=gen)
    added = {"text_embeds": torch.randn(batch, TINY_SDXL_TEXT_2_HIDDEN, generator=gen),
             "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64], [128, 96, 8, 4, 64, 64]])}
    got = unet(sample, 500, encoder_hidden_states=text, added_cond_kwargs=added).sample
    want = UNetMotionModel.forward(unet, sample, 500, encoder_hidden_states=text, added_cond_kwargs=added).sample
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="added conditioning"):
        unet(sample, 500, encoder_hidden_states=text)
    with pytest.raises(ValueError, match="text_embeds"):
        unet(sample, 500, encoder_hidden_states=text, added_cond_kwargs={**added, "time_ids": added["time_ids"][:1]})


# ------------------------------------------------------------------------------------------ save / load, VAE, LoRA
def test_save_then_load_round_trip(sdxl_pipe, tmp_path):
    want = render(sdxl_pipe)
    sdxl_pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    assert index["tokenizer_2"][1] == "CLIPTokenizer"
    loaded = TurboNextPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.text_time_conditioned and isinstance(loaded.text_encoder_2, CLIPTextModelWithProjection)
    torch.testing.assert_close(render(loaded), want)
    frames = [f for pose in make_pose_frames(3) for f in loaded.stream(reference_image=make_reference(), window=4,
                                                                        num_inference_steps=2, output_type="np")
              .step(pose)]
    assert all(np.isfinite(f).all() for f in frames)


def test_the_sdxl_vae_scaling_and_fp16_upcast(sdxl_pipe, tiny_hub):
    vae = AutoencoderKL.from_pretrained(tiny_hub["base_sdxl"], subfolder="vae")
    image = torch.rand(1, 3, 64, 64)
    want = vae.encode(image * 2 - 1).latent_dist.mode() * 0.13025
    torch.testing.assert_close(sdxl_pipe.encode_images(image), want)
    half = TurboNextPipeline(**{**sdxl_pipe.components, "encoder_vae": vae.to(torch.float16)})
    latents = half.encode_images(image)  # force_upcast: encoded in fp32, the VAE kept in fp16 afterwards
    assert latents.dtype == torch.float32 and vae.dtype == torch.float16
    torch.testing.assert_close(latents, want, rtol=1e-3, atol=1e-3)


def test_sdxl_lcm_lora_fuses(tiny_hub, tmp_path):
    lora = write_tiny_lora(Path(tiny_hub["base_sdxl"]) / "unet", tmp_path / "lcm-lora-sdxl")
    pipe = build(tiny_hub, lcm_lora=lora)
    assert isinstance(pipe.scheduler, LCMScheduler)
    assert np.isfinite(render(pipe, output_type="np")).all()


# ------------------------------------------------------------------------------------------ wrong combinations
def test_an_sd15_motion_adapter_on_sdxl_is_refused_with_the_fix(tiny_hub):
    with pytest.raises(ValueError, match="animatediff-motion-adapter-sdxl-beta"):
        build(tiny_hub, motion_adapter=tiny_hub["motion_adapter"])


def test_an_sdxl_motion_adapter_on_sd15_is_refused(tiny_hub):
    with pytest.raises(ValueError, match="animatediff-motion-adapter-v1-5-3"):
        TurboNextPipeline.from_components(base=tiny_hub["base"], motion_adapter=tiny_hub["motion_adapter_sdxl"],
                                          tiny_vae=tiny_hub["tiny_vae"], lcm_lora=None)


def test_a_pose_guider_of_another_width_is_refused(tiny_hub, tmp_path):
    from turbonext.models.pose_guider import PoseGuider

    PoseGuider(block_out_channels=(8, 16, 16), out_channels=48).save_pretrained(tmp_path / "guider")
    with pytest.raises(ValueError, match="conv_in has 32"):
        build(tiny_hub, pose_guider=str(tmp_path / "guider"))


# ------------------------------------------------------------------------------------------ full-size shapes
@pytest.mark.slow
@pytest.mark.parametrize("backbone, size, text", [("sd21", 512, 1024), ("sdxl", 1024, 2048)])
@torch.no_grad()
def test_full_size_configs_fit_together_on_the_meta_device(backbone, size, text):
    """The full-size random-weight rows of `turbonext bench stream --arch sd21|sdxl`, shapes only (no memory, no
    GPU): ReferenceNet write pass, pose guider at 320 channels, motion UNet reading the reference, SDXL's 2816-wide
    added embedding (1280 pooled + 6 x 256)."""
    from turbonext.models.reference_attention import install_reference_processors, run_reference_net

    with torch.device("meta"):
        comps = build_backbone_components(backbone, "full")
        unet = TurboNextUNetMotionModel.from_unet2d(comps["unet2d"], comps["motion_adapter"])
        install_reference_processors(comps["unet2d"], "write")
        install_reference_processors(unet, "read")
        added = None
        if backbone == "sdxl":
            assert unet.add_embedding.linear_1.in_features == 2816
            added = {"text_embeds": torch.randn(1, comps["text_encoder_2"].config.projection_dim),
                     "time_ids": torch.randn(1, 6)}
        h = size // 8
        cache = run_reference_net(comps["unet2d"], torch.randn(1, 4, h, h), torch.randn(1, 77, text),
                                  added_cond_kwargs=added)
        frames = 2
        pose = comps["pose_guider"](torch.rand(frames, 3, size, size))
        assert pose.shape == (frames, 320, h, h) == (frames, unet.conv_in.out_channels, h, h)
        out = unet(torch.randn(1, 4, frames, h, h), 999, encoder_hidden_states=torch.randn(frames, 77, text),
                   added_cond_kwargs=added, pose_features=pose, cross_attention_kwargs={"reference": cache}).sample
    assert out.shape == (1, 4, frames, h, h)
