"""Converters for the AnimateAnyone family (issue 14) and the pipeline options they need.

The full-size key checks use manifests derived from each source's own model code (tests/fixtures/converters,
see its README): every key of every file the source ships must map onto our modules, none unused, none missing.
The numerical checks (test_converter_equivalence.py) compare against the sources' own outputs.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, LCMScheduler

from tests.conftest import make_pose_frames, make_reference
from turbonext.commands.main import main as cli
from turbonext.converters import (
    SOURCES,
    UnsafeCheckpointError,
    architecture_configs,
    build_models,
    get_source,
    load_state_dict,
    map_checkpoint,
    motion_key,
)
from turbonext.converters.build import build_random_pipeline
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.unet_motion import PerFrameGroupNorm, TurboNextUNetMotionModel
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline, guidance_scale_embedding
from turbonext.schedulers.scheduling_staggered_lcm import StaggeredLCMSchedule


FIXTURES = Path(__file__).parent / "fixtures" / "converters"
MANIFESTS = {"animate-anyone": "animate_anyone_manifest.json", "musepose": "musepose_manifest.json",
             "rain": "rain_manifest.json"}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_every_key_of_the_full_size_checkpoints_maps(name):
    """Full-size (SD1.5) state dicts in the source's own key names and shapes, from its model code: 100% map."""
    manifest = json.loads((FIXTURES / MANIFESTS[name]).read_text())
    source = get_source(name)
    assert set(manifest["files"]) == set(source.files.values())
    models = build_models(source, architecture_configs(source), empty=True)
    states = {role: {k: torch.empty(shape, device="meta") for k, shape in manifest["files"][file].items()}
              for role, file in source.files.items()}
    mapped, report = map_checkpoint(source, states, models)
    assert report.ok, report.format()
    assert all(not f.unused and not f.mismatched for f in report.files)
    assert sum(f.mapped for f in report.files) == sum(len(v) for v in manifest["files"].values())
    # what is filled without a source key is only the ReferenceNet's unused output layers
    assert report.filled.get("reference_unet", []) == ["conv_norm_out.bias", "conv_norm_out.weight",
                                                       "conv_out.bias", "conv_out.weight"]
    for component, model in models.items():
        assert set(mapped[component]) == set(model.state_dict()), component


def test_motion_key_mapping_matches_diffusers_names():
    key = "up_blocks.1.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_out.0.weight"
    assert motion_key(key) == "up_blocks.1.motion_modules.2.transformer_blocks.0.attn2.to_out.0.weight"
    assert motion_key("mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.norms.0.bias") == \
        "mid_block.motion_modules.0.transformer_blocks.0.norm1.bias"
    assert motion_key("down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.ff_norm.weight") == \
        "down_blocks.0.motion_modules.0.transformer_blocks.0.norm3.weight"
    pe = "down_blocks.0.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
    assert motion_key(pe) == "down_blocks.0.motion_modules.1.transformer_blocks.0.pos_embed.pe"
    assert motion_key("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight") == \
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"  # spatial keys keep their names


class _Evil:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_pickled_objects_are_refused_and_plain_state_dicts_load(tmp_path):
    evil = tmp_path / "pose_guider.pth"
    with open(evil, "wb") as f:
        pickle.dump({"conv_in.weight": _Evil()}, f)
    with pytest.raises(UnsafeCheckpointError, match="weights_only=True"):
        load_state_dict(evil)
    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": {"a": torch.ones(2)}}, plain)
    assert torch.equal(load_state_dict(plain)["a"], torch.ones(2))  # {"state_dict": ...} unwrapped
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        (tmp_path / "x.onnx").write_bytes(b"0")
        load_state_dict(tmp_path / "x.onnx")


def test_convert_cli_exits_non_zero_and_writes_nothing_on_a_mismatch(tmp_path, capsys):
    src = tmp_path / "rain"
    src.mkdir()
    torch.save({"conv_in.weight": torch.zeros(16, 3, 3, 3), "not_a_layer.weight": torch.zeros(1)}, src / "pose_guider.pth")
    torch.save({"conv_in.weight": torch.zeros(320, 4, 3, 3)}, src / "reference_unet.pth")
    torch.save({"conv_in.weight": torch.zeros(320, 4, 3, 3)}, src / "motion_unet.pth")
    out = tmp_path / "out"
    assert cli(["convert", "rain", str(src), str(out)]) == 1
    printed = capsys.readouterr()
    assert "unused: not_a_layer.weight" in printed.out and "FAILED" in printed.out
    assert "pose_guider: 15 missing" in printed.out  # its 16 keys less conv_in.weight
    assert not out.exists()
    assert cli(["convert", "musepose", str(src), str(out)]) == 1  # its files are not there
    assert "missing MusePose/denoising_unet.pth" in capsys.readouterr().err


def test_per_frame_group_norm_takes_statistics_per_frame():
    norm = torch.nn.GroupNorm(4, 8, eps=1e-6)
    torch.nn.init.normal_(norm.weight)
    per_frame = PerFrameGroupNorm(4, 8, eps=1e-6)
    per_frame.load_state_dict(norm.state_dict())
    x = torch.randn(2, 8, 3, 4, 4) * torch.tensor([1.0, 5.0, 20.0]).view(1, 1, 3, 1, 1)  # frames of other scales
    expected = torch.stack([norm(x[:, :, f]) for f in range(3)], dim=2)
    torch.testing.assert_close(per_frame(x), expected)
    assert not torch.allclose(norm(x), expected, atol=1e-3)  # diffusers' joint statistics differ


def test_unet_motion_norm_is_saved_and_swaps_only_motion_norms(tmp_path):
    source = get_source("animate-anyone")
    from turbonext.converters.build import tiny_architecture
    unet = build_models(source, tiny_architecture(source), empty=False)["unet"]
    assert unet.config.motion_norm == "per_frame"
    norms = [n for n, m in unet.named_modules() if isinstance(m, PerFrameGroupNorm)]
    assert norms and all("motion_modules" in n and n.endswith(".norm") for n in norms)
    unet.save_pretrained(tmp_path / "unet")
    again = TurboNextUNetMotionModel.from_pretrained(tmp_path / "unet")
    assert again.config.motion_norm == "per_frame" and again.config.stream_schedule == "uniform"
    assert sum(isinstance(m, PerFrameGroupNorm) for m in again.modules()) == len(norms)
    with pytest.raises(ValueError, match="motion_norm must be one of"):
        TurboNextUNetMotionModel(motion_norm="batch")


def test_pose_guider_animate_anyone_layout():
    guider = PoseGuider(layout="animate_anyone", block_out_channels=(16, 32, 96, 256), out_channels=320)
    assert sorted({k.split(".")[0] for k in guider.state_dict()}) == ["blocks", "conv_in", "conv_out"]
    assert len(guider.blocks) == 6 and guider.downscale_factor == 8
    out = guider(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 320, 8, 8) and out.abs().max() == 0  # zero-initialised conv_out
    torch.nn.init.normal_(guider.conv_out.weight)
    assert guider(torch.rand(1, 3, 64, 64)).abs().max() > 0
    with pytest.raises(ValueError, match="no reference branch"):
        PoseGuider(layout="animate_anyone", reference_features=True)
    with pytest.raises(ValueError, match="layout must be one of"):
        PoseGuider(layout="controlnet")


def test_guidance_embedding_is_the_lcm_distillation_one():
    from diffusers import LatentConsistencyModelPipeline

    w = torch.tensor([2.5])
    expected = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w, embedding_dim=512)
    torch.testing.assert_close(guidance_scale_embedding(w, 512), expected)


@pytest.mark.parametrize("cls", [DDIMScheduler, LCMScheduler])
def test_frame_schedule_matches_the_scheduler_with_v_prediction_and_zero_snr(cls):
    config = dict(get_source("animate-anyone").scheduler_config, beta_schedule="scaled_linear")
    if cls is LCMScheduler:
        config = get_source("rain").scheduler_config
    steps = 4
    schedule = StaggeredLCMSchedule(cls(**config).config, steps, update="ddim" if cls is DDIMScheduler else "lcm")
    sched = cls(**config)
    sched.set_timesteps(steps)
    assert schedule.timesteps.tolist() == sched.timesteps.tolist() == [999, 749, 499, 249]
    x, v = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 4, 3, 8, 8)
    for level, t in enumerate(sched.timesteps):
        sched._step_index = level
        expected = sched.step(v, t, x, generator=torch.Generator().manual_seed(7)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
        got, _ = schedule.step(v, x, torch.full((3,), level), noise)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_unconditional_rows_can_skip_the_reference():
    """reference_skip_rows: the first rows attend to their own tokens only (the AnimateAnyone family's CFG)."""
    pipe = build_random_pipeline("animate-anyone", tiny=True)
    for p in pipe.unet.parameters():
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 else None
    cache = pipe.set_reference(make_reference(64))
    frames = 2
    x = torch.randn(2, 4, frames, 8, 8)
    context = torch.cat([torch.zeros_like(cache.context), cache.context]).repeat_interleave(frames, 0)
    kwargs = dict(encoder_hidden_states=context, return_dict=False)
    skipped = pipe.unet(x, 500, cross_attention_kwargs={"reference": cache, "reference_skip_rows": frames}, **kwargs)[0]
    read = pipe.unet(x, 500, cross_attention_kwargs={"reference": cache}, **kwargs)[0]
    plain = pipe.unet(x, 500, cross_attention_kwargs={"reference": None}, **kwargs)[0]
    torch.testing.assert_close(skipped[:1], plain[:1])  # the unconditional video: no reference
    torch.testing.assert_close(skipped[1:], read[1:])  # the conditional one reads it
    assert not torch.allclose(read[:1], plain[:1])


def test_image_conditioned_pipeline_uses_the_reference_embedding_and_refuses_prompts():
    pipe = build_random_pipeline("animate-anyone", tiny=True)
    assert pipe.image_conditioned and pipe.text_encoder is None
    ref = make_reference(64)
    cache = pipe.set_reference(ref)
    assert cache.context.shape == (1, 1, 32)
    other = pipe.set_reference(make_reference(64, seed=5)).context
    assert not torch.allclose(other, cache.context)  # the context follows the reference image
    with pytest.raises(ValueError, match="conditioned on the reference image"):
        pipe(reference_image=ref, pose_images=make_pose_frames(2), prompt="a dancer", num_inference_steps=1)


def test_converted_pipeline_saves_and_loads_with_its_options(tmp_path):
    pipe = build_random_pipeline("rain", tiny=True)
    pipe.save_pretrained(tmp_path / "rain")
    again = TurboNextPipeline.from_pretrained(tmp_path / "rain")
    assert again.text_encoder is None and again.image_encoder is not None
    assert again.config.reference_in_uncond is False and again.config.embedded_guidance_scale == 2.5
    assert again.config.pose_style == "rain_face" and again.config.stream_update == "lcm"
    assert again.unet.config.time_cond_proj_dim == 16 and again.unet.config.stream_schedule == "staggered"
    assert isinstance(again.scheduler, LCMScheduler) and again.scheduler.config.prediction_type == "v_prediction"
    assert again.pose_guider.config.layout == "animate_anyone"
    for a, b in zip(pipe.unet.state_dict().values(), again.unet.state_dict().values()):
        assert torch.equal(a, b)


def test_a_rain_layout_pipeline_streams_64_frames():
    pipe = build_random_pipeline("rain", tiny=True)
    source = SOURCES["rain"]
    session = pipe.stream(reference_image=make_reference(64), num_inference_steps=source.num_inference_steps,
                          window=source.stream_window, frames_per_level=source.stream_frames_per_level,
                          output_type="np")
    assert session.schedule_name == "staggered" and session.schedule.update == "lcm"
    assert session.timestep_cond is not None and session.timestep_cond.shape == (1, 16)
    out = []
    for pose in make_pose_frames(64, seed=2):
        out += session.step(pose)
    out += session.flush()
    assert len(out) == 64 and all(f.shape == (64, 64, 3) for f in out)
    assert session.stats.unet_calls == 64 // 4 + 3  # one call per group of 4, plus the 3 to drain the window
    assert np.isfinite(np.stack(out).astype(float)).all()


def test_bench_stream_times_a_converted_architecture(tmp_path):
    out = tmp_path / "bench.json"
    assert cli(["bench", "stream", "--tiny", "--arch", "animate-anyone", "--baselines", "b", "--steps", "2",
                "--window", "8", "--frames-per-level", "4", "--schedule", "uniform", "--frames", "4", "--warmup", "4",
                "--fifo-frames", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "animate-anyone architecture" in result["title"]
    names = [r["name"] for r in result["rows"]]
    assert names[0].startswith("(b)") and "uniform" in names[1] and result["rows"][1]["fps"] > 0
    with pytest.raises(SystemExit, match="exclude each other"):
        cli(["bench", "stream", "--arch", "rain", "--model", "turbonext-demo"])


def test_position_tables_are_checked_against_the_formula_and_kept_as_computed():
    """MusePose's loader drops the shipped tables; ours are the same formula, so a table of another length maps
    (checked where both are defined) and a table that is not the formula is refused."""
    from turbonext.converters.build import tiny_architecture

    source = get_source("animate-anyone")
    models = build_models(source, tiny_architecture(source), empty=False)
    ours = {k: v for k, v in models["unet"].state_dict().items() if k.endswith("pos_embed.pe")}
    name = next(iter(ours))
    theirs = name.replace(".transformer_blocks.0.pos_embed.pe",
                          ".temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe")
    from turbonext.converters.key_mapping import MappingReport, map_state_dict

    for table, ok in ((ours[name][:, :24].clone(), True), (torch.rand_like(ours[name]), False)):
        report, out = MappingReport(), {}
        map_state_dict("motion_module.pth", "unet", {theirs: table}, {name: tuple(ours[name].shape)}, out, report,
                       position_table=ours.__getitem__)
        assert (not report.files[0].mismatched) is ok
        if ok:
            assert torch.equal(out[name], ours[name])  # the full-length table, as computed


@torch.no_grad()
def test_stream_with_guidance_equals_the_clip_for_a_ddim_model():
    """A Moore-layout model streamed in the uniform layout with all frames new (frames_per_level = window) and
    CFG 3.5 denoises exactly the clip ``pipe(...)`` makes from the same noise: DDIM updates, v-prediction,
    unconditional rows without the reference."""
    pipe = build_random_pipeline("animate-anyone", tiny=True)
    for name, p in pipe.unet.named_parameters():  # random but non-trivial temporal and output layers
        if "proj_out" in name or "conv_out" in name:
            torch.nn.init.normal_(p, std=0.05)
    torch.nn.init.normal_(pipe.pose_guider.conv_out.weight, std=0.05)
    ref, poses = make_reference(64), make_pose_frames(4, seed=3)
    session = pipe.stream(reference_image=ref, num_inference_steps=3, window=4, frames_per_level=4,
                          guidance_scale=3.5, output_type="pt", generator=torch.Generator().manual_seed(5))
    assert session.schedule.update == "ddim" and session.guidance_scale == 3.5
    streamed = []
    for pose in poses:
        streamed += session.step(pose)
    generator = torch.Generator().manual_seed(5)
    torch.randn((1, 4, 4, 8, 8), generator=generator)  # the session's first draw fills the empty window
    latents = torch.randn((1, 4, 4, 8, 8), generator=generator)  # its second: the 4 new frames
    clip = pipe(pose_images=poses, num_inference_steps=3, guidance_scale=3.5, latents=latents, output_type="pt").frames[0]
    assert len(streamed) == 4
    torch.testing.assert_close(torch.stack(streamed), clip, atol=1e-4, rtol=0)
    unguided = pipe(pose_images=poses, num_inference_steps=3, guidance_scale=1.0, latents=latents, output_type="pt").frames[0]
    assert (unguided - clip).abs().max() > 1e-3  # guidance changed the picture


def test_the_model_pose_style_reaches_reference_and_driving_pose_maps():
    from turbonext.jobs.driving_inputs import synthetic_demo_inputs
    from turbonext.jobs.live import LiveSession
    from turbonext.jobs.reference import pose_style_of, prepare_reference
    from turbonext.pose.keypoints import Person

    moore = build_random_pipeline("animate-anyone", tiny=True)
    assert pose_style_of(moore) == "openpose" and SOURCES["musepose"].pose_style == "musepose"
    demo = synthetic_demo_inputs(size=128, num_frames=2, pose_style="openpose")
    plain = synthetic_demo_inputs(size=128, num_frames=2)
    assert not np.array_equal(np.asarray(demo.poses[0]), np.asarray(plain.poses[0]))
    assert np.array_equal(np.asarray(demo.truth[0]), np.asarray(plain.truth[0]))  # same person, other drawing

    class OnePerson:  # a detector that finds one standing person
        def detect(self, rgb):
            kp = np.array([[64, 20], [60, 16], [68, 16], [56, 18], [72, 18], [50, 40], [78, 40], [46, 60], [82, 60],
                           [44, 78], [84, 78], [56, 80], [72, 80], [56, 104], [72, 104], [56, 124], [72, 124]], float)
            return [Person.from_array(np.concatenate([kp, np.ones((17, 1))], 1))]

    photo = make_reference(128)
    openpose = prepare_reference(photo, OnePerson(), 128, pose_style="openpose").pose_map
    ours = prepare_reference(photo, OnePerson(), 128).pose_map
    assert openpose.shape == ours.shape == (128, 128, 3) and not np.array_equal(openpose, ours)
    rain = build_random_pipeline("rain", tiny=True)
    with pytest.raises(ValueError, match="face landmarks"):
        LiveSession(rain, OnePerson())


def test_converted_models_sample_as_their_sources_by_default():
    moore = build_random_pipeline("animate-anyone", tiny=True)
    assert moore.config.default_num_inference_steps == 30 and moore.config.default_guidance_scale == 3.5
    steps = []
    moore(reference_image=make_reference(64), pose_images=make_pose_frames(2), output_type="latent",
          callback_on_step_end=lambda p, i, t, kw: steps.append(p.guidance_scale) or {})
    assert len(steps) == 30 and steps[0] == 3.5  # 30 DDIM steps with CFG 3.5, unless the call says otherwise
    steps.clear()
    moore(pose_images=make_pose_frames(2), num_inference_steps=2, guidance_scale=1.0, output_type="latent",
          callback_on_step_end=lambda p, i, t, kw: steps.append(p.guidance_scale) or {})
    assert steps == [1.0, 1.0]
