"""Converted models compute what their sources' own code computes (issue 14).

tests/fixtures/converters/{moore,rain}_tiny.safetensors hold random weights in each source's own key names
and file split, inputs, and the outputs of the source's code on them (its UNets, ReferenceAttentionControl,
pose guider, pipelines and scheduler; tiny configs, fp32; see the fixtures' README for the command that made
them). Here the weights go through ``convert_checkpoint`` as the .pth files the sources ship, and the
converted pipeline's modules must reproduce those outputs within 1e-4.

Their pipelines copy the reference features into the reader with ``update(writer)``, whose default dtype is
fp16, even in fp32 runs; the "fp32bank" outputs were made with dtype=fp32. Where only the fp16 version exists
(the Moore clip), the test rounds our reference tokens to fp16 the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from turbonext.converters import convert_checkpoint, get_source
from turbonext.converters.build import tiny_architecture
from turbonext.models.reference_attention import run_reference_net


FIXTURES = Path(__file__).parent / "fixtures" / "converters"
ATOL = 1e-4


def _convert(name: str, fixture: str, tmp_path) -> tuple:
    tensors = load_file(str(FIXTURES / f"{fixture}.safetensors"))
    source = get_source(name)
    folder = tmp_path / fixture
    folder.mkdir()
    for file in source.files.values():
        prefix = f"weights/{file}/"
        torch.save({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, folder / file)
    pipe, report = convert_checkpoint(name, str(folder), image_encoder=str(FIXTURES / "moore_tiny_image_encoder"),
                                      vae=str(FIXTURES / "moore_tiny_vae"), dtype="fp32",
                                      arch=tiny_architecture(source), log=lambda *_: None)
    assert report.ok, report.format()
    pipe.set_progress_bar_config(disable=True)
    return pipe, tensors


@pytest.fixture(scope="module")
def moore(tmp_path_factory):
    return _convert("animate-anyone", "moore_tiny", tmp_path_factory.mktemp("moore"))


@pytest.fixture(scope="module")
def rain(tmp_path_factory):
    return _convert("rain", "rain_tiny", tmp_path_factory.mktemp("rain"))


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B*F, C, H, W), frame-major within each video (their "(b f)")."""
    return x.permute(0, 2, 1, 3, 4).reshape(-1, *x.shape[1:2], *x.shape[3:])


def _unet_call(pipe, t, timestep, timestep_cond=None, cfg=False):
    frames = t["inputs/unet_call_sample"].shape[2]
    pose = _frames(t["inputs/unet_call_pose"])
    features = pipe.pose_guider(pose)  # (F, C, h, w)
    context = t["inputs/unet_call_encoder_hidden_states"]  # (1, 1, D)
    cache = run_reference_net(pipe.reference_unet, t["inputs/unet_call_ref_latents"], context)
    cache.precompute_kv(pipe.unet)
    sample, kwargs = t["inputs/unet_call_sample"], {"reference": cache}
    if cfg:
        sample, features = sample.repeat(2, 1, 1, 1, 1), features.repeat(2, 1, 1, 1)
        context = torch.cat([torch.zeros_like(context), context])
        kwargs["reference_skip_rows"] = frames
    out = pipe.unet(sample, timestep, encoder_hidden_states=context.repeat_interleave(frames, 0),
                    timestep_cond=timestep_cond, pose_features=features, cross_attention_kwargs=kwargs,
                    return_dict=False)[0]
    return out, features, cache


@torch.no_grad()
def test_moore_unet_call_with_reference_and_pose_matches_its_code(moore):
    pipe, t = moore
    out, features, cache = _unet_call(pipe, t, t["inputs/unet_call_timestep"])
    frames = out.shape[2]
    expected_features = _frames(t["outputs/unet_call_pose_fea"])
    torch.testing.assert_close(features, expected_features, atol=ATOL, rtol=0)
    for block in ("down_blocks.0.attentions.0.transformer_blocks.0", "mid_block.attentions.0.transformer_blocks.0",
                  "up_blocks.1.attentions.1.transformer_blocks.0"):  # what the writer stored (norm1 outputs)
        torch.testing.assert_close(cache.tokens[block + ".attn1"], t[f"outputs/unet_call_bank/{block}"], atol=ATOL, rtol=0)
    torch.testing.assert_close(out, t["outputs/unet_call_fp32bank"], atol=ATOL, rtol=0)
    assert frames == 4 and (out - t["outputs/unet_call_noref"]).abs().max() > 10 * ATOL  # the reference matters


@torch.no_grad()
def test_moore_cfg_rows_match_its_code_the_unconditional_one_without_reference(moore):
    pipe, t = moore
    out, _, _ = _unet_call(pipe, t, t["inputs/unet_call_timestep"], cfg=True)
    torch.testing.assert_close(out, t["outputs/unet_call_cfg_fp32bank"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_motion_module_with_per_frame_norm_matches_animatediff_v2(moore):
    pipe, t = moore
    hidden = t["inputs/mm_call_hidden_states"]  # (1, C, F, h, w)
    frames = hidden.shape[2]
    out = pipe.unet.down_blocks[0].motion_modules[0](_frames(hidden), num_frames=frames)
    torch.testing.assert_close(out, _frames(t["outputs/mm_call"]), atol=ATOL, rtol=0)


@torch.no_grad()
def test_moore_clip_of_two_ddim_steps_with_cfg_matches_its_pipeline(moore):
    pipe, t = moore
    ref = t["inputs/clip_ref_image"].numpy()
    poses = list(t["inputs/clip_pose_images"].numpy())
    cache = pipe.set_reference(ref)
    torch.testing.assert_close(cache.context[:, 0], t["outputs/clip_image_embeds"], atol=ATOL, rtol=0)
    # their reader.update(writer) rounds the reference features to fp16 (its default dtype): do the same
    cache.tokens = {name: tokens.half().float() for name, tokens in cache.tokens.items()}
    cache.precompute_kv(pipe.unet)
    steps = []
    video = pipe(pose_images=poses, num_inference_steps=2, guidance_scale=3.5, latents=t["inputs/clip_latents"],
                 output_type="pt", callback_on_step_end=lambda p, i, ts, kw: steps.append(kw["latents"].clone()) or {}
                 ).frames  # (1, F, 3, H, W) in [0, 1]
    assert pipe.scheduler.timesteps.tolist() == t["outputs/clip_timesteps"].tolist()
    for i, latents in enumerate(steps):
        torch.testing.assert_close(latents, t[f"outputs/clip_step{i}_prev_sample"], atol=ATOL, rtol=0)
    torch.testing.assert_close(video.permute(0, 2, 1, 3, 4), t["outputs/clip_video"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_rain_unet_call_with_per_frame_timesteps_and_guidance_embedding_matches_its_code(rain):
    pipe, t = rain
    cond = pipe.guidance_embedding(1.0, "cpu", torch.float32)  # the config's w = 2.5, RAIN's default
    source = json.loads((FIXTURES / "rain_tiny.json").read_text())["cases"]["unet_call"]
    assert source["guidance_scale_w"] == pipe.config.embedded_guidance_scale
    torch.testing.assert_close(cond, t["inputs/unet_call_timestep_cond"], atol=1e-6, rtol=0)
    out, _, _ = _unet_call(pipe, t, t["inputs/unet_call_timesteps"], timestep_cond=cond)
    torch.testing.assert_close(out, t["outputs/unet_call_fp32bank"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_rain_stream_tick_matches_its_morpher(rain):
    """One tick of RAIN's live loop (window of 2 groups x 2 frames at levels 499 and 999): the UNet call with
    per-frame timesteps and the per-frame LCM update of turbonext's streaming engine give its numbers."""
    pipe, t = rain
    from turbonext.schedulers.scheduling_staggered_lcm import StaggeredLCMSchedule

    cache = pipe.set_reference(t["inputs/clip_ref_image"].numpy())
    torch.testing.assert_close(cache.context, t["outputs/tick_encoder_hidden_states"], atol=ATOL, rtol=0)
    cache.tokens = {name: tokens.half().float() for name, tokens in cache.tokens.items()}  # their fp16 bank copy
    cache.precompute_kv(pipe.unet)
    schedule = StaggeredLCMSchedule(pipe.scheduler.config, 2, update=pipe.config.stream_update)
    timesteps = t["outputs/tick_timesteps"]  # (1, 4): 499, 499, 999, 999
    levels = torch.tensor([1, 1, 0, 0])
    assert schedule.timesteps[levels].tolist() == timesteps[0].tolist()
    poses = torch.from_numpy(t["inputs/tick_pose_images"].numpy()).permute(0, 3, 1, 2).float() / 255
    features = torch.cat([_frames(t["inputs/tick_pile_pose_fea_0"]), pipe.pose_guider(poses)])
    torch.testing.assert_close(features, _frames(t["outputs/tick_pose_cond_fea"]), atol=ATOL, rtol=0)
    sample = t["outputs/tick_model_input"]
    pred = pipe.unet(sample, timesteps, encoder_hidden_states=cache.context.repeat_interleave(4, 0),
                     timestep_cond=pipe.guidance_embedding(1.0, "cpu", torch.float32), pose_features=features,
                     cross_attention_kwargs={"reference": cache}, return_dict=False)[0]
    torch.testing.assert_close(pred, t["outputs/tick_noise_pred"], atol=ATOL, rtol=0)
    next_sample, denoised = schedule.step(pred, sample, levels, t["outputs/tick_step_noise"])
    torch.testing.assert_close(next_sample, t["outputs/tick_prev_sample"], atol=ATOL, rtol=0)
    torch.testing.assert_close(denoised, t["outputs/tick_denoised"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_a_converted_folder_loads_with_from_pretrained_and_keeps_the_numbers(tmp_path):
    from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline

    _, t = _convert("rain", "rain_tiny", tmp_path)
    out = tmp_path / "converted"
    convert_checkpoint("rain", str(tmp_path / "rain_tiny"), str(out), image_encoder=str(FIXTURES / "moore_tiny_image_encoder"),
                       vae=str(FIXTURES / "moore_tiny_vae"), dtype="fp32", arch=tiny_architecture(get_source("rain")),
                       log=lambda *_: None)
    card = (out / "README.md").read_text()
    assert "RAIN v0.1" in card and "Apache-2.0" in card and "OK: every key mapped" in card
    assert json.loads((out / "conversion.json").read_text())["files"][0]["unused"] == []
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pth"))  # safetensors only
    pipe = TurboNextPipeline.from_pretrained(out)
    out_call, _, _ = _unet_call(pipe, t, t["inputs/unet_call_timesteps"],
                                timestep_cond=pipe.guidance_embedding(1.0, "cpu", torch.float32))
    torch.testing.assert_close(out_call, t["outputs/unet_call_fp32bank"], atol=ATOL, rtol=0)


def test_a_hub_source_downloads_only_the_files_it_needs(tmp_path, monkeypatch):
    """SRC as a Hub repo id: snapshot_download restricted to the family's checkpoint files (and, for the image
    encoder and VAE, to that component's files), nothing else; never the network in tests."""
    import shutil

    import huggingface_hub

    _convert("rain", "rain_tiny", tmp_path)  # writes the .pth files into tmp_path / "rain_tiny"
    calls = []

    def fake_snapshot_download(repo_id, allow_patterns=None, **kwargs):
        calls.append((repo_id, list(allow_patterns)))
        folder = tmp_path / "hub" / repo_id.replace("/", "--")
        folder.mkdir(parents=True, exist_ok=True)
        if repo_id == "Pscgylotti/RAIN-v0.1":
            for f in (tmp_path / "rain_tiny").iterdir():
                shutil.copy(f, folder / f.name)
        elif repo_id == "lambdalabs/sd-image-variations-diffusers" and not (folder / "image_encoder").exists():
            shutil.copytree(FIXTURES / "moore_tiny_image_encoder", folder / "image_encoder")
        elif repo_id == "stabilityai/sd-vae-ft-mse":
            if allow_patterns[0].startswith("vae/"):
                return str(folder)  # no vae/ subfolder in that repo: the root's files come next
            shutil.copytree(FIXTURES / "moore_tiny_vae", folder, dirs_exist_ok=True)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    convert_checkpoint("rain", "Pscgylotti/RAIN-v0.1", None, dtype="fp32", arch=tiny_architecture(get_source("rain")),
                       log=lambda *_: None)
    assert calls[0] == ("Pscgylotti/RAIN-v0.1", ["reference_unet.pth", "motion_unet.pth", "pose_guider.pth"])
    encoder = [p for r, p in calls if r == "lambdalabs/sd-image-variations-diffusers"]
    assert encoder and all(pattern.startswith("image_encoder/") for pattern in encoder[0])  # not the whole repo
    vae = [p for r, p in calls if r == "stabilityai/sd-vae-ft-mse"]
    assert len(vae) == 2 and "config.json" in vae[1] and not any("*" in p for p in vae[1])
