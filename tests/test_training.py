"""Training on tiny components and a tiny synthetic dataset (64 px, 2 frames, 1-3 steps)."""

import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from turbonext.trainer.checkpoints import UNET_WEIGHTS, list_checkpoints
from turbonext.trainer.config import TrainConfig, load_config
from turbonext.trainer.dataset import PoseVideoDataset, load_image
from turbonext.trainer.losses import diffusion_loss, pose_heatmap, pose_loss_weights


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from turbonext.synthetic import write_dataset

    root = tmp_path_factory.mktemp("data")
    write_dataset(root, num_identities=3, motions=["walk", "wave"], frames=4, size=64, progress=False)
    return root


@pytest.fixture(scope="module")
def make_cfg(tiny_hub, tiny_data, tmp_path_factory):
    def make(**overrides) -> TrainConfig:
        values = dict(
            base=tiny_hub["base"], motion_adapter=tiny_hub["motion_adapter"], tiny_vae=tiny_hub["tiny_vae"],
            dataset_dir=str(tiny_data), split="train", resolution=64, num_frames=2, max_train_steps=2,
            learning_rate=1e-3, lr_warmup_steps=0, checkpointing_steps=1, checkpoints_total_limit=1,
            validation_steps=2, validation_num_frames=2, validation_num_inference_steps=2, report_to="none",
            output_dir=str(tmp_path_factory.mktemp("run")), pose_loss_weighting=True,
        )
        values.update(overrides)
        return TrainConfig(**values).validate()

    return make


@pytest.fixture(scope="module")
def first_run(make_cfg):
    from turbonext.trainer.loop import train

    return train(make_cfg())


def test_run_writes_checkpoint_config_log_and_validation(first_run):
    out = first_run.output_dir
    assert first_run.start_step == 0 and first_run.global_step == 2 and np.isfinite(first_run.last_loss)
    assert [s for s, _ in list_checkpoints(out)] == [2]  # checkpoints_total_limit=1 pruned checkpoint-1
    ckpt = out / "checkpoint-2"
    for name in ("pose_guider/config.json", "pose_guider/diffusion_pytorch_model.safetensors", UNET_WEIGHTS,
                 "config.yaml", "trainer_state.json", "optimizer.bin", "scheduler.bin"):
        assert (ckpt / name).is_file(), name
    assert not (ckpt / "reference_unet").exists() and not list(ckpt.glob("model*.safetensors"))
    assert load_config(ckpt / "config.yaml") == load_config(out / "config.yaml")
    records = [json.loads(line) for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2] and any("val/psnr" in r for r in records)
    for suffix in ("mp4", "gif"):
        assert (out / "validation" / f"step-000002.{suffix}").stat().st_size > 0


def test_only_intended_parameters_change(first_run, tiny_pipe_factory):
    from turbonext.models.reference_attention import spatial_self_attention_names

    trained, initial = first_run.pipe, tiny_pipe_factory()
    attn = spatial_self_attention_names(trained.unet)
    init_unet = dict(initial.unet.named_parameters())
    n_trainable = 0
    for name, param in trained.unet.named_parameters():
        if any(name.startswith(a + ".") for a in attn):
            n_trainable += 1
            assert param.requires_grad and not torch.equal(param, init_unet[name]), name
        else:
            assert not param.requires_grad and torch.equal(param, init_unet[name]), name
    assert n_trainable == len(load_file(str(first_run.output_dir / "checkpoint-2" / UNET_WEIGHTS))) > 0
    for part in ("vae", "encoder_vae", "text_encoder", "reference_unet"):
        after, before = getattr(trained, part).state_dict(), getattr(initial, part).state_dict()
        assert all(torch.equal(after[k], before[k]) for k in before), part
    assert float(trained.pose_guider.zero_conv.weight.detach().abs().sum()) > 0  # zero-initialised, now trained


def test_resume_restores_weights_and_continues(first_run, make_cfg):
    from turbonext.trainer.loop import cli_main, train

    out = first_run.output_dir
    ckpt = out / "checkpoint-2"
    resumed = train(make_cfg(output_dir=str(out), resume_from_checkpoint="latest", validation_steps=0))
    assert resumed.start_step == 2 and resumed.global_step == 2  # nothing left to do
    own = dict(resumed.pipe.unet.named_parameters())
    assert all(torch.equal(own[k], v) for k, v in load_file(str(ckpt / UNET_WEIGHTS)).items())
    guider = load_file(str(ckpt / "pose_guider" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(resumed.pipe.pose_guider.state_dict()[k], v) for k, v in guider.items())

    # the CLI, from the run's own saved config: the step counter continues at 3
    assert cli_main(["--config", str(out / "config.yaml"), "--resume", "latest", "max_train_steps=3", "validation_steps=0"]) == 0
    assert [s for s, _ in list_checkpoints(out)] == [3]
    steps = [json.loads(line)["step"] for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert steps[-1] == 3 and steps.count(3) == 1


def test_export_loads_with_from_pretrained_and_renders(first_run, tmp_path):
    from turbonext import TurboNextPipeline
    from turbonext.trainer.export import cli_main

    ckpt = list_checkpoints(first_run.output_dir)[-1][1]
    assert cli_main([str(ckpt), str(tmp_path / "pipe")]) == 0
    pipe = TurboNextPipeline.from_pretrained(tmp_path / "pipe")
    own = dict(pipe.unet.named_parameters())
    assert all(torch.equal(own[k], v) for k, v in load_file(str(ckpt / UNET_WEIGHTS)).items())
    guider = load_file(str(ckpt / "pose_guider" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(pipe.pose_guider.state_dict()[k], v) for k, v in guider.items())
    pose = np.zeros((64, 64, 3), np.uint8)
    pose[10:50, 30:34] = 255
    frames = pipe(reference_image=np.full((64, 64, 3), 90, np.uint8), pose_images=[pose, pose[:, ::-1]],
                  num_inference_steps=2, output_type="np").frames[0]
    assert frames.shape == (2, 64, 64, 3) and np.isfinite(frames).all()
    with pytest.raises(SystemExit):
        cli_main([str(tmp_path), str(tmp_path / "other")])  # not a checkpoint: a clear usage error

    # the demo model's form: LCMScheduler, weights stored in fp16, loaded back in fp32
    from diffusers import LCMScheduler

    assert cli_main([str(ckpt), str(tmp_path / "half"), "--scheduler", "lcm", "--dtype", "fp16"]) == 0
    stored = load_file(str(tmp_path / "half" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    half = TurboNextPipeline.from_pretrained(tmp_path / "half", torch_dtype=torch.float32)
    assert isinstance(half.scheduler, LCMScheduler) and half.unet.dtype == torch.float32
    assert all(torch.allclose(half.unet.state_dict()[k], v.half().float()) for k, v in pipe.unet.state_dict().items())


def test_export_writes_a_model_card_and_pushes_to_the_hub(first_run, tiny_hub, tmp_path, fake_hub):
    from huggingface_hub import ModelCard

    from turbonext.trainer.export import cli_main

    ckpt = list_checkpoints(first_run.output_dir)[-1][1]
    out = tmp_path / "pipe"
    assert cli_main([str(ckpt), str(out), "--scheduler", "lcm", "--push-to-hub", "you/tiny-turbonext"]) == 0
    card = ModelCard.load(out / "README.md")
    facts = card.data.to_dict()["turbonext_training"]
    step = int(ckpt.name.split("-")[1])  # the module's run may have been resumed by an earlier test
    assert facts["checkpoint"] == f"{ckpt.name} (step {step})" and facts["resolution"] == 64 and facts["num_frames"] == 2
    assert facts["scheduler"] == "LCMScheduler" and "num_inference_steps=4" in card.text
    assert card.data.base_model is None  # a local base folder is not a Hub model ...
    assert str(tmp_path.parent) not in card.content and tiny_hub["base"] not in card.content  # ... nor a path leaked
    assert [c[0] for c in fake_hub.calls] == ["create_repo", "upload_folder"] and "README.md" in fake_hub.calls[1][2]
    with pytest.raises(SystemExit):  # a bad repo id is refused before the export runs
        cli_main([str(ckpt), str(tmp_path / "other"), "--push-to-hub", "/not/a/repo"])
    assert not (tmp_path / "other").exists()


def test_init_checkpoint_loads_trained_parts_at_step_zero(first_run, make_cfg, tiny_pipe_factory):
    from turbonext.trainer.checkpoints import load_init_checkpoint

    ckpt = list_checkpoints(first_run.output_dir)[0][1]
    pipe = tiny_pipe_factory()
    load_init_checkpoint(make_cfg(init_checkpoint=str(ckpt)), pipe)
    own = dict(pipe.unet.named_parameters())
    assert all(torch.equal(own[k], v) for k, v in load_file(str(ckpt / UNET_WEIGHTS)).items())
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_init_checkpoint(make_cfg(init_checkpoint=str(first_run.output_dir)), pipe)


@pytest.fixture(scope="module")
def exported_model(first_run, tmp_path_factory):
    """An exported pipeline folder whose every unet / reference_unet / pose_guider weight differs from the
    components the runs are built from (the trained export, perturbed; stored in fp16 like the demo)."""
    from turbonext import TurboNextPipeline
    from turbonext.trainer.export import cli_main

    root = tmp_path_factory.mktemp("exported")
    assert cli_main([str(list_checkpoints(first_run.output_dir)[-1][1]), str(root / "trained")]) == 0
    pipe = TurboNextPipeline.from_pretrained(root / "trained")
    torch.manual_seed(0)
    with torch.no_grad():
        for part in ("unet", "reference_unet", "pose_guider"):
            for param in getattr(pipe, part).parameters():
                param.add_(0.01 * torch.randn_like(param))
    pipe.to(torch.float16).save_pretrained(root / "model", safe_serialization=True)
    return root / "model"


def _exported_weights(folder, part: str) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in load_file(str(folder / part / "diffusion_pytorch_model.safetensors")).items()}


def test_init_pipeline_starts_a_run_from_an_exported_model(exported_model, make_cfg, tiny_pipe_factory, tmp_path,
                                                            monkeypatch):
    from accelerate.state import AcceleratorState

    from turbonext import TurboNextPipeline
    from turbonext.trainer import loop
    from turbonext.trainer.export import cli_main

    parts = ("unet", "reference_unet", "pose_guider")
    before_first_step = {}

    def compute_loss(batch, pipe, *args, **kwargs):  # the trainer's modules as the first step sees them
        if not before_first_step:
            before_first_step.update({p: {k: v.clone() for k, v in getattr(pipe, p).state_dict().items()} for p in parts})
        return original(batch, pipe, *args, **kwargs)

    original = loop.compute_loss
    monkeypatch.setattr(loop, "compute_loss", compute_loss)
    AcceleratorState._reset_state()
    cfg = make_cfg(init_pipeline=str(exported_model), max_train_steps=1, validation_steps=0,
                   output_dir=str(tmp_path / "run"))
    result = loop.train(cfg)
    fresh = tiny_pipe_factory()
    for part in parts:
        weights = _exported_weights(exported_model, part)
        assert set(before_first_step[part]) == set(weights), part
        assert all(torch.equal(before_first_step[part][k], v) for k, v in weights.items()), part  # fp16 -> fp32
        base = getattr(fresh, part).state_dict()  # what the run would start from without init_pipeline
        assert not any(torch.equal(base[k], v) for k, v in weights.items() if v.any()), part
    ckpt = result.output_dir / "checkpoint-1"
    assert load_config(ckpt / "config.yaml").init_pipeline == str(exported_model)  # resume and export re-apply it

    # the export rebuilds the frozen parts from init_pipeline: e.g. the (frozen) ResNets and motion modules
    assert cli_main([str(ckpt), str(tmp_path / "pipe")]) == 0
    exported = TurboNextPipeline.from_pretrained(tmp_path / "pipe").unet.state_dict()
    init_unet, trained = _exported_weights(exported_model, "unet"), load_file(str(ckpt / UNET_WEIGHTS))
    frozen = [k for k in init_unet if k not in trained]
    assert any(".resnets." in k for k in frozen) and any("motion_modules" in k for k in frozen)
    assert all(torch.equal(exported[k], init_unet[k]) for k in frozen)
    assert all(torch.equal(exported[k], v) for k, v in trained.items())


def test_init_pipeline_refuses_mismatches_and_handles_the_reference_pose_branch(exported_model, make_cfg, tiny_hub,
                                                                                tmp_path):
    import shutil

    from turbonext.models.pose_guider import PoseGuider
    from turbonext.trainer.checkpoints import load_init, load_init_pipeline
    from turbonext.trainer.trainable import build_pipeline

    with pytest.raises(ValueError, match="mutually exclusive"):
        make_cfg(init_pipeline=str(exported_model), init_checkpoint=str(tmp_path))
    with pytest.raises(ValueError, match="not a pipeline folder"):
        load_init(make_cfg(init_pipeline=str(tmp_path)), build_pipeline(make_cfg()))
    # another architecture: a motion adapter with a mid block gives the trainer's UNet keys the export lacks
    other = build_pipeline(make_cfg(motion_adapter=tiny_hub["motion_adapter_v2"]))
    with pytest.raises(ValueError, match=r"its unet does not match .*keys the export lacks \(\d+\): mid_block\."):
        load_init_pipeline(str(exported_model), other)
    # a pose guider of other widths: a shape mismatch naming the component and the key
    bad = tmp_path / "bad"
    shutil.copytree(exported_model, bad)
    guider = PoseGuider.from_pretrained(bad / "pose_guider")
    PoseGuider(block_out_channels=(8, 16, 24), out_channels=guider.config.out_channels).save_pretrained(bad / "pose_guider")
    with pytest.raises(ValueError, match=r"its pose_guider does not match .*shape mismatches.*encoder\.0\.weight"):
        load_init_pipeline(str(bad), build_pipeline(make_cfg()))

    # reference_pose: true from an export without the branch: a fresh zero branch, the rest loaded
    pipe = build_pipeline(make_cfg(reference_pose=True))
    load_init_pipeline(str(exported_model), pipe)
    weights = _exported_weights(exported_model, "pose_guider")
    own = pipe.pose_guider.state_dict()
    assert all(torch.equal(own[k], v) for k, v in weights.items())
    assert pipe.pose_guider.reads_reference_pose and not pipe.pose_guider.reference_zero_conv.weight.any()
    # an export with the branch into a run without it: refused (the branch would be dropped silently)
    branch = tmp_path / "branch"
    shutil.copytree(exported_model, branch)
    with_branch = PoseGuider.with_reference_features(guider)
    torch.nn.init.constant_(with_branch.reference_zero_conv.weight, 0.5)
    with_branch.save_pretrained(branch / "pose_guider")
    with pytest.raises(ValueError, match="reference_pose: true"):
        load_init_pipeline(str(branch), build_pipeline(make_cfg()))
    pipe = build_pipeline(make_cfg(reference_pose=True))
    load_init_pipeline(str(branch), pipe)
    assert bool((pipe.pose_guider.reference_zero_conv.weight == 0.5).all())  # a trained branch is kept


def test_bf16_checkpointing_accumulation_and_optional_parts(make_cfg, tiny_pipe_factory):
    from accelerate.state import AcceleratorState

    from turbonext.trainer.loop import train

    AcceleratorState._reset_state()  # accelerate fixes mixed precision once per process; tests switch it

    cfg = make_cfg(mixed_precision="bf16", gradient_checkpointing=True, gradient_accumulation_steps=2,
                   train_reference_unet=True, train_motion_modules=True, max_train_steps=1, validation_steps=0,
                   pose_loss_weighting=False, per_frame_timesteps=1.0, color_augmentation=1.0)
    try:
        result = train(cfg)
    finally:
        AcceleratorState._reset_state()  # leave no bf16 state behind for later tests
    initial = tiny_pipe_factory()
    assert result.global_step == 1 and (result.output_dir / "checkpoint-1" / "reference_unet").is_dir()
    before = initial.reference_unet.state_dict()
    changed = [k for k, v in result.pipe.reference_unet.state_dict().items() if not torch.equal(v, before[k])]
    assert any("attn1" in k for k in changed)  # gradients reached the ReferenceNet through the tokens
    init_unet = initial.unet.state_dict()
    motion = [k for k, v in result.pipe.unet.state_dict().items() if "motion_modules" in k and not torch.equal(v, init_unet[k])]
    assert motion
    resnets = [k for k in init_unet if ".resnets." in k and "motion_modules" not in k]
    assert all(torch.equal(result.pipe.unet.state_dict()[k], init_unet[k]) for k in resnets)


def test_reference_pose_run_trains_the_branch_checkpoints_and_exports(first_run, make_cfg, tmp_path):
    from accelerate.state import AcceleratorState

    from turbonext import TurboNextPipeline
    from turbonext.trainer.checkpoints import load_init_checkpoint
    from turbonext.trainer.export import cli_main
    from turbonext.trainer.loop import train
    from turbonext.trainer.trainable import build_pipeline

    AcceleratorState._reset_state()
    plain_ckpt = list_checkpoints(first_run.output_dir)[-1][1]  # trained without the reference branch
    cfg = make_cfg(reference_pose=True, init_checkpoint=str(plain_ckpt), max_train_steps=1, validation_steps=1,
                   output_dir=str(tmp_path / "run"))
    result = train(cfg)
    guider = result.pipe.pose_guider
    assert guider.reads_reference_pose and float(guider.reference_zero_conv.weight.detach().abs().sum()) > 0
    plain_guider = load_file(str(plain_ckpt / "pose_guider" / "diffusion_pytorch_model.safetensors"))
    assert any(not torch.equal(guider.state_dict()[k], v) for k, v in plain_guider.items())
    assert (result.output_dir / "validation" / "step-000001.mp4").stat().st_size > 0  # validation passes the pose

    ckpt = result.output_dir / "checkpoint-1"
    assert cli_main([str(ckpt), str(tmp_path / "pipe")]) == 0
    pipe = TurboNextPipeline.from_pretrained(tmp_path / "pipe")
    assert pipe.reads_reference_pose
    assert torch.equal(pipe.pose_guider.reference_zero_conv.weight, guider.reference_zero_conv.weight)
    with pytest.raises(ValueError, match="reference_pose: true"):
        load_init_checkpoint(make_cfg(init_checkpoint=str(ckpt)), build_pipeline(make_cfg()))

    # --drop-reference-pose: no branch, no reference pose needed, and it renders the branch-zeroed model
    from turbonext.evaluation.ablations import reference_pose_zeroed

    assert cli_main([str(ckpt), str(tmp_path / "dropped"), "--drop-reference-pose"]) == 0
    dropped = TurboNextPipeline.from_pretrained(tmp_path / "dropped")
    assert not dropped.reads_reference_pose and not hasattr(dropped.pose_guider, "reference_zero_conv")
    ref, pose = np.full((64, 64, 3), 90, np.uint8), np.zeros((64, 64, 3), np.uint8)
    pose[10:50, 30:34] = 255
    kwargs = dict(reference_image=ref, pose_images=[pose, pose[:, ::-1]], num_inference_steps=2, output_type="latent")
    with reference_pose_zeroed(pipe):
        expected = pipe(**kwargs, reference_pose=pose, generator=torch.Generator().manual_seed(0)).frames
    torch.testing.assert_close(dropped(**kwargs, generator=torch.Generator().manual_seed(0)).frames, expected)


def test_dataset_reference_pose_is_the_reference_frames_pose(tiny_data):
    ds = PoseVideoDataset(tiny_data, resolution=32, num_frames=2, split="train")
    scenes_of = {s.video: [t for t in ds.scenes if t.video == s.video] for s in ds.scenes}
    for index in range(4):
        torch.manual_seed(index)
        sample = ds[index]
        video = ds.scenes[ds.clips[index][0]].video
        pairs = [(img, pose) for s in scenes_of[video] for img, pose in zip(s.images, s.poses)]
        assert any(torch.equal(load_image(img, 32, Image.Resampling.BICUBIC), sample["reference"])
                   and torch.equal(load_image(pose, 32, Image.Resampling.BILINEAR).clamp(0, 1), sample["reference_pose"])
                   for img, pose in pairs)


def test_same_scene_reference_draws_a_distant_frame_of_the_clips_own_scene(tiny_data):
    ds = PoseVideoDataset(tiny_data, resolution=32, num_frames=2, split="train", same_scene_reference=1.0,
                          reference_min_distance=2)
    scene_index = ds.clips[0][0]
    scene = ds.scenes[scene_index]
    for seed in range(6):
        torch.manual_seed(seed)
        image, pose = ds.reference_frame(scene_index, [0, 1])
        assert image in scene.images[3:] and pose == scene.poses[scene.images.index(image)]  # >= 2 frames away
    half = PoseVideoDataset(tiny_data, resolution=32, num_frames=2, split="train", same_scene_reference=0.5)
    torch.manual_seed(0)
    own = [half.reference_frame(scene_index, [0, 1])[0] in scene.images for _ in range(40)]
    assert 5 < sum(own) < 35  # both kinds are drawn
    with pytest.raises(ValueError, match="same_scene_reference"):
        PoseVideoDataset(tiny_data, same_scene_reference=-0.1)
    with pytest.raises(ValueError, match="same_scene_reference"):
        TrainConfig(same_scene_reference=2.0).validate()


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rat: 1.0e-4\nresolution: 64\n")
    with pytest.raises(ValueError, match=r"learning_rat.*did you mean 'learning_rate'.*Accepted keys: base"):
        load_config(path)
    with pytest.raises(ValueError, match="foo"):
        load_config(None, ["foo=1"])
    with pytest.raises(ValueError, match="num_frames"):
        load_config(None, ["num_frames=abc"])
    with pytest.raises(ValueError, match="resolution"):
        load_config(None, ["resolution=30"])
    for key in ("per_frame_timesteps", "color_augmentation"):
        with pytest.raises(ValueError, match=f"{key} is a probability"):
            load_config(None, [f"{key}=1.5"])
    cfg = load_config(None, ["learning_rate=1e-4", "split=null", "pose_loss_weighting=true"])
    assert cfg.learning_rate == 1e-4 and cfg.split is None and cfg.pose_loss_weighting is True


def test_shipped_configs_and_their_documented_overrides_validate():
    import re
    from pathlib import Path

    configs = sorted(Path(__file__).parents[1].joinpath("training", "configs").glob("*.yaml"))
    assert {p.name for p in configs} >= {"sd15_pose_transfer.yaml", "synthetic_tiny.yaml", "demo_256.yaml"}
    for path in configs:
        cfg = load_config(path)
        assert cfg.resolution % 8 == 0 and cfg.max_train_steps > 0
        # the stage-2 / override lines written in each file's header comments must be accepted as written
        header = "\n".join(line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#"))
        for command in header.replace("\\\n", " ").splitlines():
            if "training/train.py" in command:
                load_config(path, re.findall(r"(?<![\w-])([a-z_]+=\S+)", command))
    stage2 = load_config(configs[[p.name for p in configs].index("sd15_pose_transfer.yaml")],
                         ["num_frames=16", "per_frame_timesteps=0.5", "train_motion_modules=true"])
    assert stage2.num_frames == 16 and stage2.per_frame_timesteps == 0.5


def test_pose_weighted_loss_weights_skeleton_pixels_more():
    pose = torch.zeros(1, 3, 64, 64)
    pose[:, 0, 8:56, 30:34] = 1.0  # a red vertical limb
    heat = pose_heatmap(pose, (8, 8), blur_sigma=0)  # (1, 1, 8, 8)
    assert heat.shape == (1, 1, 8, 8) and float(heat.max()) == 1.0
    assert heat[0, 0, 4, 3:5].min() > 0.5 and heat[0, 0, 4, 0] == 0  # on the limb vs far from it
    assert pose_heatmap(torch.zeros(1, 3, 64, 64), (8, 8)).abs().sum() == 0
    weights = pose_loss_weights(pose[:, None].expand(1, 2, 3, 64, 64), (8, 8), strength=2.0, blur_sigma=0)
    assert weights.shape == (1, 1, 2, 8, 8)
    target = torch.zeros(1, 4, 2, 8, 8)
    on_limb, off_limb = target.clone(), target.clone()
    on_limb[..., 4, 3] = 1.0
    off_limb[..., 4, 0] = 1.0
    assert diffusion_loss(on_limb, target, weights) > 2 * diffusion_loss(off_limb, target, weights)
    assert diffusion_loss(on_limb, target) == diffusion_loss(off_limb, target)  # unweighted: the same
    assert torch.isclose(diffusion_loss(on_limb, target, torch.ones_like(weights)), diffusion_loss(on_limb, target))


def test_per_frame_timesteps_noise_each_frame_at_its_own_level():
    from diffusers import DDPMScheduler

    from turbonext.trainer.loop import _per_frame, sample_timesteps

    torch.manual_seed(0)
    assert sample_timesteps(3, 4, 1000, 0.0, "cpu").shape == (3,)  # default: one level per clip
    t = sample_timesteps(64, 4, 1000, 0.5, "cpu")  # (B, F)
    same = (t == t[:, :1]).all(dim=1)
    assert t.shape == (64, 4) and 10 < int(same.sum()) < 54  # about half the clips share one level
    assert int(t.min()) >= 0 and int(t.max()) < 1000

    sched = DDPMScheduler(num_train_timesteps=1000)
    latents, noise = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)  # (B, C, F, h, w)
    t = torch.tensor([[0, 500, 999], [10, 10, 900]])
    noisy = _per_frame(sched.add_noise, latents, noise, t)
    for b in range(2):
        for f in range(3):
            a = sched.alphas_cumprod[t[b, f]]
            expected = a.sqrt() * latents[b, :, f] + (1 - a).sqrt() * noise[b, :, f]
            assert torch.allclose(noisy[b, :, f], expected, atol=1e-6)
    shared = torch.tensor([7, 300])
    assert torch.allclose(_per_frame(sched.add_noise, latents, noise, shared), sched.add_noise(latents, noise, shared))


def test_color_augmentation_permutes_reference_and_clip_alike(tiny_data):
    plain = PoseVideoDataset(tiny_data, resolution=32, num_frames=2, split="train")
    augmented = PoseVideoDataset(tiny_data, resolution=32, num_frames=2, split="train", color_augmentation=1.0)
    orders = set()
    for seed in range(12):
        torch.manual_seed(seed)
        a = plain[1]
        torch.manual_seed(seed)
        b = augmented[1]  # the same reference is drawn; then one channel order for everything
        assert torch.equal(a["poses"], b["poses"])  # pose maps are never recoloured
        matches = [p for p in itertools.permutations(range(3))
                   if torch.equal(a["frames"][:, list(p)], b["frames"]) and torch.equal(a["reference"][list(p)], b["reference"])]
        assert matches, "frames and reference must share one channel permutation"
        orders.add(matches[0])
    assert len(orders) > 2  # the permutation really varies
    with pytest.raises(ValueError, match="probability"):
        PoseVideoDataset(tiny_data, color_augmentation=1.5)


def test_rotate_hue_keeps_greys_and_turns_colours():
    from turbonext.trainer.dataset import rotate_hue

    greys = torch.tensor([0.0, 0.3, 1.0]).view(1, 1, 3).expand(3, 1, 3)  # (3, H=1, W=3): black, grey, white
    assert torch.allclose(rotate_hue(greys, 1.234), greys, atol=1e-6)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    turned = rotate_hue(red, 2 * np.pi / 3)  # a third of a turn: red -> green
    assert torch.allclose(turned.flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    assert torch.allclose(rotate_hue(red, 0.0), red) and torch.allclose(rotate_hue(red, 2 * np.pi), red, atol=1e-5)
    batch = torch.rand(2, 3, 3, 4, 4)
    assert rotate_hue(batch, 1.0).shape == batch.shape and 0 <= float(rotate_hue(batch, 1.0).min())


def test_hue_augmentation_turns_reference_and_clip_alike(tiny_data):
    from turbonext.trainer.dataset import rotate_hue

    plain = PoseVideoDataset(tiny_data, resolution=32, num_frames=2, split="train")
    augmented = PoseVideoDataset(tiny_data, resolution=32, num_frames=2, split="train", hue_augmentation=1.0)
    changed = 0
    for seed in range(6):
        torch.manual_seed(seed)
        a = plain[1]
        torch.manual_seed(seed)
        b = augmented[1]  # the same reference is drawn, then one angle for reference and clip
        assert torch.equal(a["poses"], b["poses"])  # pose maps are never recoloured
        torch.manual_seed(seed)
        plain[1]
        torch.rand(())  # the augmentation's "whether" draw, then its angle
        angle = float(torch.rand(())) * 2 * np.pi
        assert torch.allclose(rotate_hue(a["frames"], angle), b["frames"], atol=1e-6)
        assert torch.allclose(rotate_hue(a["reference"], angle), b["reference"], atol=1e-6)
        changed += not torch.allclose(a["frames"], b["frames"], atol=1e-3)
    assert changed >= 5
    with pytest.raises(ValueError, match="probability"):
        PoseVideoDataset(tiny_data, hue_augmentation=-0.1)


def test_dataset_samples_and_errors(tiny_data, tmp_path):
    ds = PoseVideoDataset(tiny_data, resolution=32, num_frames=2, split="train")
    assert len(ds) == 2 * 3  # 2 scenes of 4 frames, 3 clip starts each
    sample = ds[0]
    assert sample["frames"].shape == (2, 3, 32, 32) and sample["poses"].shape == (2, 3, 32, 32)
    assert sample["reference"].shape == (3, 32, 32) and 0 <= float(sample["frames"].min()) <= float(sample["frames"].max()) <= 1
    scene = ds.scenes[ds.clips[0][0]]
    assert all(ds.reference_frame(ds.clips[0][0], [0, 1])[0].parent.parent != scene.images[0].parent.parent for _ in range(5))
    assert len(PoseVideoDataset(tiny_data, resolution=64, num_frames=1)) == 6 * 4  # all scenes, image stage

    with pytest.raises(ValueError, match="does not exist"):
        PoseVideoDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no scenes found"):
        PoseVideoDataset(tmp_path)
    with pytest.raises(ValueError, match="frames a clip needs"):
        PoseVideoDataset(tiny_data, num_frames=5)
    with pytest.raises(ValueError, match="split 'nope'"):
        PoseVideoDataset(tiny_data, split="nope")
    bad = tmp_path / "bad" / "vid" / "scene"
    (bad / "images").mkdir(parents=True)
    (bad / "poses").mkdir()
    Image.new("RGB", (8, 8)).save(bad / "images" / "00001.jpg")
    Image.new("RGB", (8, 8)).save(bad / "poses" / "00002.jpg")
    with pytest.raises(ValueError, match="unmatched"):
        PoseVideoDataset(tmp_path / "bad")

    wide = tmp_path / "wide.png"
    Image.new("RGB", (40, 20), (255, 255, 255)).save(wide)
    square = load_image(wide, 32, Image.Resampling.BILINEAR)  # padded black to 40x40, never stretched
    assert square.shape == (3, 32, 32) and float(square[:, 0].max()) == 0 and float(square[:, 16].min()) == 1



def test_noise_offset_adds_a_constant_per_clip_frame_and_channel():
    from turbonext.trainer.loop import training_noise

    latents = torch.zeros(3, 4, 5, 32, 32)  # (B, C, F, h, w)
    torch.manual_seed(0)
    plain = training_noise(latents)
    torch.manual_seed(0)
    assert torch.equal(plain, torch.randn_like(latents))  # default: plain Gaussian noise
    torch.manual_seed(0)
    offset = training_noise(latents, noise_offset=1.0)
    spatial_mean = offset.mean(dim=(-2, -1))  # (B, C, F): the constant part of each frame's channel
    # plain noise: means ~ N(0, 1/1024); with offset 1: ~ N(0, 1 + 1/1024), different per clip, frame, channel
    assert plain.mean(dim=(-2, -1)).std() < 0.1 and 0.6 < spatial_mean.std() < 1.5
    assert len(torch.unique(spatial_mean.round(decimals=6))) == spatial_mean.numel()
    residual = offset - spatial_mean[..., None, None]
    assert 0.9 < residual.std() < 1.1  # still unit Gaussian around the offset
    with pytest.raises(ValueError, match="noise_offset"):
        TrainConfig(noise_offset=-0.1).validate()


# ---------------------------------------------------------------- the live stream's window layout (issue 13)
def _slices(window: list[int], length: int) -> set[tuple[int, ...]]:
    return {tuple(window[i:i + length]) for i in range(len(window) - length + 1)}


def test_stream_layout_clips_are_slices_of_a_stream_sessions_window(tiny_pipe):
    from turbonext.schedulers.scheduling_staggered_lcm import StaggeredLCMSchedule
    from turbonext.trainer.loop import stream_layout_timesteps, stream_schedule_timesteps

    k, m, c = 4, 2, 2
    levels = stream_schedule_timesteps(tiny_pipe.scheduler.config, k)
    assert levels.tolist() == StaggeredLCMSchedule(tiny_pipe.scheduler.config, k).timesteps.tolist() == [999, 759, 499, 259]
    # the session's own per-slot table (oldest slot first): [0, 0, 259, 259, 499, 499, 759, 759, 999, 999]
    session = tiny_pipe.stream(np.full((64, 64, 3), 90, np.uint8), num_inference_steps=k, window=c + k * m,
                               frames_per_level=m, schedule="staggered")
    window = session.slot_timestep.tolist()
    assert window == [0] * c + [259] * m + [499] * m + [759] * m + [999] * m

    torch.manual_seed(0)
    # a clip as long as the window, always with its context: exactly the session's layout
    t, clean = stream_layout_timesteps(5, len(window), levels, m, c, clean_context=1.0)
    assert t.shape == clean.shape == (5, len(window)) and t.dtype == torch.long
    assert (t == torch.tensor(window)).all() and torch.equal(clean, t == 0)

    # shorter clips: every 3-frame slice of the window is drawn (every phase, partial levels included) and
    # nothing else; the staircase order holds (oldest frame = least noisy), only the stream's timesteps
    t, clean = stream_layout_timesteps(400, 3, levels, m, c, clean_context=0.5)
    rows = {tuple(r) for r in t.tolist()}
    assert rows == _slices(window, 3) and len(rows) == 8
    assert (t[:, 1:] >= t[:, :-1]).all() and set(t.unique().tolist()) <= {0, *levels.tolist()}
    assert torch.equal(clean, t == 0) and 0.35 < clean.any(dim=1).float().mean() < 0.65
    assert {tuple(r) for r in stream_layout_timesteps(200, 3, levels, m, c)[0].tolist()} == _slices(window[c:], 3)
    with_context = {tuple(r) for r in stream_layout_timesteps(100, 3, levels, m, c, clean_context=1.0)[0].tolist()}
    assert with_context == {(0, 0, 259), (0, 259, 259)}

    # a clip longer than the staircase: the staircase at its end, the frames before it clean (its context)
    t, clean = stream_layout_timesteps(4, 6, levels[:2], 2)
    assert t.tolist() == [[0, 0, 759, 759, 999, 999]] * 4 and clean.sum(dim=1).tolist() == [2] * 4
    # never a clip without a noisy frame, even when the context could fill it
    t, clean = stream_layout_timesteps(50, 2, levels, 1, context_frames=4, clean_context=1.0)
    assert t.tolist() == [[0, 259]] * 50 and not clean.all(dim=1).any()


def test_stream_layout_jitter_moves_each_level_and_mixes_with_plain_clips():
    from turbonext.trainer.loop import sample_training_timesteps, stream_layout_timesteps

    levels = torch.tensor([999, 759, 499, 259])
    torch.manual_seed(0)
    exact, _ = stream_layout_timesteps(64, 8, levels, 2)
    assert set(exact.unique().tolist()) == set(levels.tolist())  # default: no jitter
    t, _ = stream_layout_timesteps(64, 8, levels, 2, jitter=10)  # (B, 8): levels 3, 3, 2, 2, 1, 1, 0, 0
    base = torch.tensor([259, 259, 499, 499, 759, 759, 999, 999])
    assert ((t - base).abs() <= 10).all() and int(t.max()) <= 999 and len(t.unique()) > 8
    assert torch.equal(t[:, 0::2], t[:, 1::2])  # the frames of one level share its (moved) timestep
    assert (t[:, 1:] >= t[:, :-1]).all()
    with pytest.raises(ValueError, match="cross"):
        stream_layout_timesteps(2, 8, levels, 2, jitter=120)  # levels are 240 apart

    cfg = TrainConfig(stream_layout=0.5, stream_num_inference_steps=4, stream_frames_per_level=2)
    t, clean = sample_training_timesteps(200, 8, 1000, cfg, levels, "cpu")
    staircase = (t == base).all(dim=1)
    assert t.shape == clean.shape == (200, 8) and not clean.any() and 60 < int(staircase.sum()) < 140
    assert (t[~staircase] == t[~staircase][:, :1]).all()  # the others: one shared level per clip (per_frame 0)
    t, clean = sample_training_timesteps(3, 8, 1000, TrainConfig(), None, "cpu")
    assert t.shape == (3,) and clean is None  # default: as before


def test_stream_layout_loss_feeds_clean_context_as_is_and_leaves_it_out(tiny_pipe):
    from diffusers import DDPMScheduler

    from turbonext.trainer.loop import compute_loss

    cfg = TrainConfig(num_frames=4, stream_layout=1.0, stream_num_inference_steps=2, stream_context_frames=2,
                      stream_clean_context=1.0).validate()  # every clip: [0, 0, 499, 999] (window 4)
    torch.manual_seed(0)
    batch = {"frames": torch.rand(2, 4, 3, 64, 64), "poses": torch.rand(2, 4, 3, 64, 64),
             "reference": torch.rand(2, 3, 64, 64)}
    seen = {}

    def model(noisy, timesteps, ref_latents, text, poses, ref_poses):  # noise predicted as 0; absurd on clean frames
        seen.update(noisy=noisy, timesteps=timesteps)
        return torch.where(timesteps[:, None, :, None, None] == 0, 1e4, torch.zeros_like(noisy))

    noise_scheduler = DDPMScheduler.from_config(tiny_pipe.scheduler.config)
    text = tiny_pipe.encode_prompt("", "cpu")
    for weighting in (False, True):
        cfg.pose_loss_weighting = weighting
        loss = compute_loss(batch, tiny_pipe, model, noise_scheduler, text, cfg)
        assert seen["timesteps"].tolist() == [[0, 0, 499, 999]] * 2
        assert 0.5 < float(loss) < 2  # the MSE of unit noise against 0 on the noisy frames only
    latents = tiny_pipe.encode_images(batch["frames"].flatten(0, 1)).view(2, 4, 4, 8, 8).permute(0, 2, 1, 3, 4)
    assert torch.equal(seen["noisy"][:, :, :2], latents[:, :, :2])  # context: exactly the clean latents
    assert not torch.allclose(seen["noisy"][:, :, 2:], latents[:, :, 2:], atol=0.1)


def test_stream_layout_config_keys_are_checked():
    cfg = load_config(None, ["stream_layout=1", "stream_frames_per_level=2", "stream_context_frames=4",
                             "stream_clean_context=0.5", "stream_timestep_jitter=20"])
    assert cfg.stream_layout == 1.0 and cfg.stream_num_inference_steps == 4 and cfg.stream_context_frames == 4
    assert TrainConfig().stream_layout == 0.0 and TrainConfig().stream_timestep_jitter == 0  # off by default
    for bad, match in (("stream_layout=1.5", "probability"), ("stream_clean_context=-0.1", "probability"),
                       ("stream_frames_per_level=0", ">= 1"), ("stream_num_inference_steps=0", ">= 1"),
                       ("stream_context_frames=-1", ">= 0"), ("stream_timestep_jitter=-1", ">= 0")):
        with pytest.raises(ValueError, match=match):
            load_config(None, [bad, "stream_context_frames=1"] if "context_frames" not in bad else [bad])
    with pytest.raises(ValueError, match="needs stream_context_frames"):
        load_config(None, ["stream_clean_context=0.5"])


def test_stream_layout_run_trains_and_exports_a_staggered_model(make_cfg, tmp_path):
    from accelerate.state import AcceleratorState

    from turbonext import TurboNextPipeline
    from turbonext.trainer.export import cli_main, resolve_stream_schedule
    from turbonext.trainer.loop import train

    AcceleratorState._reset_state()
    cfg = make_cfg(stream_layout=1.0, stream_num_inference_steps=2, stream_context_frames=1, stream_clean_context=0.5,
                   stream_timestep_jitter=5, max_train_steps=1, validation_steps=0, output_dir=str(tmp_path / "run"))
    result = train(cfg)
    assert result.global_step == 1 and np.isfinite(result.last_loss)
    ckpt = result.output_dir / "checkpoint-1"
    assert load_config(ckpt / "config.yaml").stream_layout == 1.0

    assert cli_main([str(ckpt), str(tmp_path / "pipe")]) == 0  # auto: the run trained on the stream layout
    assert json.loads((tmp_path / "pipe" / "unet" / "config.json").read_text())["stream_schedule"] == "staggered"
    assert TurboNextPipeline.from_pretrained(tmp_path / "pipe").unet.config.stream_schedule == "staggered"
    assert cli_main([str(ckpt), str(tmp_path / "forced"), "--stream-schedule", "uniform"]) == 0
    assert json.loads((tmp_path / "forced" / "unet" / "config.json").read_text())["stream_schedule"] == "uniform"
    plain = make_cfg()
    assert resolve_stream_schedule(plain) == "uniform" and resolve_stream_schedule(plain, "staggered") == "staggered"
    assert resolve_stream_schedule(cfg, "auto") == "staggered"
    with pytest.raises(ValueError, match="stream_schedule"):
        resolve_stream_schedule(cfg, "sometimes")


def test_high_noise_weights_turn_noisy_steps_noise_error_into_an_x0_error():
    from diffusers import DDPMScheduler

    from turbonext.trainer.losses import high_noise_weights

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    abar = scheduler.alphas_cumprod
    t = torch.tensor([0, 200, 500, 700, 999])
    w = high_noise_weights(t, abar, cap=20.0)
    snr = abar[t] / (1 - abar[t])
    assert w[0] == 1 and w[1] == 1  # SNR >= 1: untouched
    assert torch.isclose(w[2], 1 / snr[2]) and torch.isclose(w[3], 1 / snr[3])  # x0 error of weight 1
    assert w[4] == 20  # capped
    assert torch.all(w[1:] >= w[:-1])  # never less weight for more noise
    # outside the normalisation: one weight shared by a whole batch scales the loss (a weighted mean would not)
    pred, target = torch.zeros(1, 4, 2, 8, 8), torch.ones(1, 4, 2, 8, 8)
    pose_w = torch.rand(1, 1, 2, 8, 8) + 0.5
    step_w = torch.full((1, 1, 2, 1, 1), 7.0)
    assert torch.isclose(diffusion_loss(pred, target, pose_w, step_w), 7 * diffusion_loss(pred, target, pose_w))
    assert torch.isclose(diffusion_loss(pred, target, None, step_w), torch.tensor(7.0))
    cfg = load_config(None, ["high_noise_loss_weight=20"])
    assert cfg.high_noise_loss_weight == 20
    with pytest.raises(ValueError, match="high_noise_loss_weight"):
        load_config(None, ["high_noise_loss_weight=0.5"])


def test_compute_loss_weights_each_frame_by_its_own_noise_level(tiny_pipe):
    from diffusers import DDPMScheduler

    from turbonext.trainer.loop import compute_loss
    from turbonext.trainer.losses import high_noise_weights

    noise_scheduler = DDPMScheduler.from_config(tiny_pipe.scheduler.config)
    text = tiny_pipe.encode_prompt("", "cpu")
    batch = {"frames": torch.rand(1, 2, 3, 64, 64), "poses": torch.rand(1, 2, 3, 64, 64),
             "reference": torch.rand(1, 3, 64, 64)}
    seen = {}

    def model(noisy, timesteps, ref_latents, text, poses, ref_poses):  # predicts zero noise: loss = weighted |noise|^2
        seen["timesteps"] = timesteps
        return torch.zeros_like(noisy)

    for per_frame in (0.0, 1.0):
        losses = {}
        for cap in (0.0, 20.0):
            cfg = TrainConfig(num_frames=2, per_frame_timesteps=per_frame, high_noise_loss_weight=cap).validate()
            torch.manual_seed(3)  # the same timesteps and noise for both caps
            losses[cap] = float(compute_loss(batch, tiny_pipe, model, noise_scheduler, text, cfg))
        weights = high_noise_weights(seen["timesteps"].reshape(-1), noise_scheduler.alphas_cumprod, 20.0)
        ratio = losses[20.0] / losses[0.0]
        if per_frame == 0.0:  # one level for the clip: the loss scales by exactly its weight
            assert seen["timesteps"].ndim == 1 and ratio == pytest.approx(float(weights[0]), rel=1e-4)
        else:  # a level per frame: each frame's error by its own weight
            assert seen["timesteps"].shape == (1, 2)
            assert float(weights.min()) - 1e-4 <= ratio <= float(weights.max()) + 1e-4


def test_copy_unet_into_reference_net_shares_every_spatial_weight(tiny_pipe_factory, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from turbonext import TurboNextPipeline
    from turbonext.trainer.trainable import copy_unet_into_reference_net

    pipe = tiny_pipe_factory()
    torch.manual_seed(0)
    with torch.no_grad():  # from_components starts both from the base UNet: make them differ first
        for param in pipe.unet.parameters():
            param.add_(0.01 * torch.randn_like(param))
    src = tmp_path / "src"
    pipe.save_pretrained(src)
    out = tmp_path / "out"
    script = Path(__file__).parents[1] / "training" / "init_reference_net.py"
    run = subprocess.run([sys.executable, str(script), str(src), str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    copied = TurboNextPipeline.from_pretrained(out)
    unet = copied.unet.state_dict()
    reference = copied.reference_unet.state_dict()
    assert reference and all(torch.equal(v, unet[k]) for k, v in reference.items())
    assert any(not torch.equal(v, pipe.reference_unet.state_dict()[k]) for k, v in reference.items())
    # the copy still renders, and its UNet is untouched
    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in unet.items())
    # an architecture mismatch is refused in words
    from diffusers import UNet2DConditionModel

    pipe.reference_unet = UNet2DConditionModel(block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                               up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                               layers_per_block=1, norm_num_groups=8, sample_size=8)
    with pytest.raises(ValueError, match="share the spatial architecture"):
        copy_unet_into_reference_net(pipe)


def test_figure_color_loss_scores_the_persons_low_pass_x0_error_at_noisy_frames():
    from turbonext.trainer.losses import figure_color_loss

    torch.manual_seed(0)
    latents, noise = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 4, 2, 8, 8)
    abar = torch.tensor([0.01, 0.02]).view(1, 1, 2, 1, 1)
    noisy = abar.sqrt() * latents + (1 - abar).sqrt() * noise
    region = torch.zeros(1, 1, 2, 8, 8)
    region[..., :4, :4] = 1  # the person: the top-left 4x4 cells
    assert float(figure_color_loss(noise, noisy, latents, abar, region)) < 1e-10  # the true noise: x0 exact

    def pred_for(x0):  # the noise prediction whose x0 estimate is x0
        return (noisy - abar.sqrt() * x0) / (1 - abar).sqrt()

    shifted = latents.clone()
    shifted[..., :4, :4] += 0.5  # a wrong colour on the person
    assert float(figure_color_loss(pred_for(shifted), noisy, latents, abar, region)) == pytest.approx(0.25, rel=1e-4)
    outside = latents.clone()
    outside[..., 4:, 4:] += 3.0  # off the person: not this loss's business
    assert float(figure_color_loss(pred_for(outside), noisy, latents, abar, region)) < 1e-8
    checks = latents.clone()
    checks[..., :4, :4] += 0.5 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(2, 2)  # texture, mean 0
    assert float(figure_color_loss(pred_for(checks), noisy, latents, abar, region)) < 1e-8
    left_out = torch.tensor([0.01, 0.0]).view(1, 1, 2, 1, 1)  # frame 1 not counted (a clean step)
    one_frame = shifted.clone()
    one_frame[:, :, 1] += 5.0
    assert float(figure_color_loss(pred_for(one_frame), noisy, latents, left_out, region)) == pytest.approx(0.25, rel=1e-3)
    nothing = torch.zeros_like(abar)
    assert float(figure_color_loss(pred_for(shifted), noisy, latents, nothing, region)) == 0.0
    velocity = abar.sqrt() * noise - (1 - abar).sqrt() * latents  # v-prediction: the true v gives x0 exactly
    assert float(figure_color_loss(velocity, noisy, latents, abar, region, "v_prediction")) < 1e-10


def test_compute_loss_adds_the_figure_color_loss_only_at_noisy_frames(tiny_pipe):
    from diffusers import DDPMScheduler

    from turbonext.trainer.loop import compute_loss

    noise_scheduler = DDPMScheduler.from_config(tiny_pipe.scheduler.config)
    text = tiny_pipe.encode_prompt("", "cpu")
    pose = torch.zeros(1, 2, 3, 64, 64)
    pose[..., 10:54, 28:36] = 1.0
    batch = {"frames": torch.rand(1, 2, 3, 64, 64), "poses": pose, "reference": torch.rand(1, 3, 64, 64)}

    seen = {}

    def model(noisy, timesteps, ref_latents, text, poses, ref_poses):
        seen["t"] = int(timesteps.reshape(-1)[0])
        return torch.zeros_like(noisy)

    def loss(**kw):
        torch.manual_seed(1)
        return float(compute_loss(batch, tiny_pipe, model, noise_scheduler, text, TrainConfig(num_frames=2, **kw).validate()))

    plain = loss()
    t = seen["t"]  # the clip's timestep under this seed (one level per clip)
    added = loss(figure_color_loss=1.0, figure_color_min_timestep=t)  # this clip counts
    skipped = loss(figure_color_loss=1.0, figure_color_min_timestep=t + 1)  # this clip is not noisy enough
    assert added > plain and skipped == pytest.approx(plain)
    with pytest.raises(ValueError, match="figure_color_loss"):
        load_config(None, ["figure_color_loss=-1"])
