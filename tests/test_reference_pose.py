"""Models that read the reference's pose: the pose guider's reference branch, the pipeline, the
streaming session, the live/upload helpers, eval and training (tiny components, CPU)."""

import logging

import numpy as np
import pytest
import torch
from conftest import make_pose_frames, make_reference
from test_live import FakeDetector, webcam_frame

from turbonext import TurboNextPipeline
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.reference_attention import run_reference_net


def with_reference_branch(pipe, random_branch: bool = True):
    pipe.register_modules(pose_guider=PoseGuider.with_reference_features(pipe.pose_guider))
    if random_branch:
        torch.manual_seed(0)
        with torch.no_grad():
            torch.nn.init.normal_(pipe.pose_guider.reference_zero_conv.weight, std=0.5)
    return pipe


def ref_pose(seed=0):
    return make_pose_frames(1, seed=seed)[0]


def run(pipe, **kwargs):
    kwargs.setdefault("reference_image", make_reference())
    kwargs.setdefault("pose_images", make_pose_frames(3))
    return pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent",
                **kwargs).frames.numpy()


def test_reference_branch_keeps_the_guider_and_starts_as_a_no_op(tiny_pipe):
    old = tiny_pipe.pose_guider
    with torch.no_grad():
        torch.nn.init.normal_(old.zero_conv.weight, std=0.1)
    new = PoseGuider.with_reference_features(old)
    assert new.reads_reference_pose and not old.reads_reference_pose
    assert all(torch.equal(v, new.state_dict()[k]) for k, v in old.state_dict().items())
    pose = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(new(pose), old(pose))
    assert float(new.encode_reference(pose).detach().abs().max()) == 0  # zero-initialised output conv
    assert PoseGuider.with_reference_features(new) is new
    with pytest.raises(ValueError, match="reference_features"):
        old.encode_reference(pose)

    # zero features leave the ReferenceNet's tokens untouched; others change them
    latents, text = torch.randn(1, 4, 8, 8), torch.randn(1, 77, tiny_pipe.text_encoder.config.hidden_size)
    plain = run_reference_net(tiny_pipe.reference_unet, latents, text)
    zero = run_reference_net(tiny_pipe.reference_unet, latents, text,
                             torch.zeros(1, tiny_pipe.reference_unet.config.block_out_channels[0], 8, 8))
    moved = run_reference_net(tiny_pipe.reference_unet, latents, text,
                              torch.randn(1, tiny_pipe.reference_unet.config.block_out_channels[0], 8, 8))
    assert plain.tokens.keys() == zero.tokens.keys() and len(plain.tokens) > 0
    assert all(torch.equal(plain.tokens[k], zero.tokens[k]) for k in plain.tokens)
    assert all(not torch.allclose(plain.tokens[k], moved.tokens[k]) for k in plain.tokens)
    with pytest.raises(ValueError, match="conv_in output"):
        run_reference_net(tiny_pipe.reference_unet, latents, text, torch.zeros(1, 3, 8, 8))
    assert not tiny_pipe.reference_unet.conv_in._forward_hooks  # the hook never outlives the call


def test_pipeline_needs_uses_and_caches_the_reference_pose(tiny_pipe_factory):
    plain = tiny_pipe_factory()
    pipe = with_reference_branch(tiny_pipe_factory(), random_branch=False)
    assert pipe.reads_reference_pose and not plain.reads_reference_pose
    with pytest.raises(ValueError, match="reference_pose="):
        run(pipe)
    with pytest.raises(ValueError, match="reference_pose="):
        pipe.set_reference(make_reference())
    # an untrained (zero) branch renders exactly what the model without it renders
    np.testing.assert_array_equal(run(pipe, reference_pose=ref_pose()), run(plain))

    with_reference_branch(pipe)
    pipe.clear_reference()
    calls = []
    pipe.reference_unet.register_forward_hook(lambda *a: calls.append(1))
    a = run(pipe, reference_pose=ref_pose(0))
    np.testing.assert_array_equal(run(pipe, reference_pose=ref_pose(0)), a)  # same image and pose: cached
    np.testing.assert_array_equal(run(pipe, reference_image=None), a)
    assert len(calls) == 1
    b = run(pipe, reference_pose=ref_pose(1))  # another pose of the same image: a new reference pass
    assert len(calls) == 2 and np.abs(a - b).mean() > 1e-4
    # a pose map of another size is resized like the reference image; PIL and tensors are accepted. A 2x
    # nearest-upscaled map resizes back to exactly the original (measured: identical latents), so the bar is
    # float rounding: a wrong or blank pose (1.3e-3 mean, 5e-3 max away, below) cannot pass it.
    big = np.kron(ref_pose(1), np.ones((2, 2, 1), np.uint8))  # 128x128
    np.testing.assert_allclose(run(pipe, reference_pose=big), b, rtol=0, atol=1e-6)
    tensor = torch.from_numpy(ref_pose(1)).permute(2, 0, 1).float() / 255
    np.testing.assert_allclose(run(pipe, reference_pose=tensor), b, rtol=0, atol=1e-6)
    blank = run(pipe, reference_pose=np.zeros((64, 64, 3), np.uint8))  # all black: no person
    assert np.abs(blank - b).mean() > 5e-4  # measured 1.3e-3
    with pytest.raises(ValueError, match="reference_pose"):
        run(pipe, reference_pose=np.zeros((64, 64, 5), np.uint8))


def test_a_model_without_the_branch_ignores_the_reference_pose_and_says_so(tiny_pipe, caplog):
    base = run(tiny_pipe)
    tiny_pipe.clear_reference()
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(run(tiny_pipe, reference_pose=ref_pose()), base)
    assert "reference_pose is ignored" in caplog.text


def test_save_load_and_stream_keep_the_reference_branch(tiny_pipe_factory, tmp_path):
    pipe = with_reference_branch(tiny_pipe_factory())
    before = run(pipe, reference_pose=ref_pose())
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = TurboNextPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.reads_reference_pose
    np.testing.assert_allclose(run(loaded, reference_pose=ref_pose()), before, rtol=1e-5, atol=1e-5)

    loaded.clear_reference()
    with pytest.raises(ValueError, match="reference_pose="):
        loaded.stream(reference_image=make_reference(), num_inference_steps=2, window=4)
    outputs = []
    for pose in (ref_pose(0), ref_pose(1)):
        session = loaded.stream(reference_image=make_reference(), num_inference_steps=2, window=4,
                                generator=torch.Generator().manual_seed(0), output_type="np", reference_pose=pose)
        frames = [f for p in make_pose_frames(4) for f in session.step(p)] + session.flush()
        assert len(frames) == 4
        outputs.append(np.stack(frames))
    assert np.abs(outputs[0] - outputs[1]).mean() > 1e-5  # the stream reads the reference pose too


def test_live_and_upload_helpers_pass_the_detected_reference_pose(tiny_pipe_factory, tmp_path):
    from turbonext.jobs.clip import render_clip
    from turbonext.jobs.live import LiveSession
    from turbonext.jobs.reference import prepare_reference, reference_pose_for

    pipe = with_reference_branch(tiny_pipe_factory())
    prepared = prepare_reference(webcam_frame(99, 80, 60), FakeDetector(), 64)
    assert prepared.pose_map.shape == (64, 64, 3) and prepared.pose_map.max() > 0  # the person's limbs, in the crop
    assert reference_pose_for(pipe, prepared) is prepared.pose_map
    assert reference_pose_for(tiny_pipe_factory(), prepared) is None
    nobody = prepare_reference(np.zeros((48, 64, 3), np.uint8), FakeDetector(), 64, require_person=False)
    assert nobody.pose_map is None
    with pytest.raises(ValueError, match="pose of the person"):
        reference_pose_for(pipe, nobody)

    live = LiveSession(pipe, FakeDetector(), num_inference_steps=2, window=4, frames_per_level=1)
    live.set_reference(webcam_frame(99, 80, 60))
    with pytest.raises(ValueError, match="pose of the person"):
        live.set_reference(np.zeros((48, 64, 3), np.uint8), require_person=False)
    assert live.runner is not None  # the running stream survived the rejected photo
    live.close()

    result = render_clip(pipe, webcam_frame(3), make_pose_frames(2), detector=FakeDetector(), num_inference_steps=2,
                         max_frames=2, out_dir=tmp_path / "clip")
    assert result.num_frames == 2 and result.video.stat().st_size > 0


def test_eval_passes_each_reference_its_pose(tiny_pipe_factory, tmp_path):
    from turbonext.evaluation.held_out import evaluate
    from turbonext.synthetic import write_dataset

    write_dataset(tmp_path / "data", num_identities=3, motions=["walk", "wave"], frames=4, size=64, progress=False)
    pipe = with_reference_branch(tiny_pipe_factory())
    seen = []
    original = pipe.set_reference

    def spy(image, *args, **kwargs):
        seen.append(kwargs.get("reference_pose"))
        return original(image, *args, **kwargs)

    pipe.set_reference = spy
    result = evaluate(pipe, tmp_path / "data", num_inference_steps=1, reference="other", lpips=False, progress=False,
                      num_frames=2)
    assert result["num_sequences"] >= 1 and len(seen) == result["num_sequences"]
    assert all(pose is not None and np.asarray(pose).max() > 0 for pose in seen)


def test_reference_pose_ablation_switches_the_branch_off_and_restores_it(tiny_pipe_factory, tiny_pipe):
    from turbonext.evaluation.ablations import ABLATIONS, REFERENCE_POSE_ABLATION, ablations_for

    pipe = with_reference_branch(tiny_pipe_factory())
    assert set(ablations_for(tiny_pipe)) == set(ABLATIONS)
    variants = ablations_for(pipe)
    assert set(variants) == set(ABLATIONS) | {REFERENCE_POSE_ABLATION}
    weight = pipe.pose_guider.reference_zero_conv.weight.detach().clone()
    full = run(pipe, reference_pose=ref_pose(0))
    with variants[REFERENCE_POSE_ABLATION](pipe):
        pipe.clear_reference()
        a = run(pipe, reference_pose=ref_pose(0))
        pipe.clear_reference()
        np.testing.assert_array_equal(run(pipe, reference_pose=ref_pose(1)), a)  # the pose no longer matters
    assert np.abs(a - full).mean() > 1e-4
    torch.testing.assert_close(pipe.pose_guider.reference_zero_conv.weight, weight)


class NobodyDetector(FakeDetector):
    def detect(self, image):
        return []


def test_cli_generate_gives_the_model_the_reference_pose(tiny_pipe_factory, tmp_path, monkeypatch, capsys):
    from PIL import Image

    import turbonext.commands.generate as detectors  # where generate looks its detector up
    from turbonext.commands.main import main as turbonext_main

    folder = tmp_path / "model"
    with_reference_branch(tiny_pipe_factory()).save_pretrained(folder)
    # built-in synthetic inputs: the demo reference comes with its pose map
    assert turbonext_main(["generate", "--model", str(folder), "--out", str(tmp_path / "a.mp4"), "--max-frames", "3",
                           "--steps", "1", "--device", "cpu"]) == 0
    # a user's photo: the person's pose is detected (and the photo cropped around them)
    poses = tmp_path / "poses"
    poses.mkdir()
    for i, p in enumerate(make_pose_frames(3)):
        Image.fromarray(p).save(poses / f"{i:03d}.png")
    Image.fromarray(webcam_frame(5, 80, 60)).save(tmp_path / "me.png")
    monkeypatch.setattr(detectors, "get_detector", lambda *a, **k: FakeDetector())
    args = ["generate", "--model", str(folder), "--poses", str(poses), "--reference", str(tmp_path / "me.png"),
            "--steps", "1", "--device", "cpu"]
    assert turbonext_main(args + ["--out", str(tmp_path / "b.mp4")]) == 0
    assert len(list((tmp_path / "b").glob("*.png"))) == 3
    capsys.readouterr()
    monkeypatch.setattr(detectors, "get_detector", lambda *a, **k: NobodyDetector())
    assert turbonext_main(args + ["--out", str(tmp_path / "c.mp4")]) == 2
    assert "no person was found" in capsys.readouterr().err
