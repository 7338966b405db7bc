"""Text-made identities: the reference generated from a prompt, then animated (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_pose_frames

from turbonext.models.reference_attention import NoReferenceError


def test_a_prompt_without_a_reference_makes_the_person_first(tiny_pipe_factory):
    pipe = tiny_pipe_factory()
    poses = make_pose_frames(2)
    with pytest.raises(NoReferenceError, match="give a prompt"):
        pipe(pose_images=poses, num_inference_steps=1)
    out = pipe(prompt="a dancer in a red dress", pose_images=poses, num_inference_steps=1, output_type="np",
               generator=torch.Generator().manual_seed(3))
    assert out.reference_image is not None and out.reference_image.size == (64, 64)
    assert out.frames.shape == (1, 2, 64, 64, 3)
    again = tiny_pipe_factory()(prompt="a dancer in a red dress", pose_images=poses, num_inference_steps=1,
                                output_type="np", generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(np.asarray(again.reference_image), np.asarray(out.reference_image))  # deterministic
    np.testing.assert_allclose(again.frames, out.frames, atol=1e-6)
    other = pipe.generate_reference("a climber in a green jacket", 64, 64, generator=torch.Generator().manual_seed(3))
    assert not np.array_equal(np.asarray(other), np.asarray(out.reference_image))
    # the made person is now the pipeline's reference: the next call reuses it
    assert pipe.reference_state.cache is not None
    assert pipe(pose_images=poses, num_inference_steps=1, output_type="np").reference_image is None


def test_text_identities_need_a_text_model():
    from turbonext.converters.build import build_random_pipeline

    pipe = build_random_pipeline("animate-anyone", tiny=True)
    with pytest.raises(ValueError, match="cannot make a person from text"):
        pipe.generate_reference("a dancer", 64, 64)


# ------------------------------------------------------------- the motion starts from the made person's pose
class StubDetector:
    """Finds ``people`` (the same list) in any image; counts its calls."""

    name = "stub"

    def __init__(self, people):
        self.people, self.calls = people, 0

    def detect(self, image):
        self.calls += 1
        return list(self.people)

    def reset(self):
        pass

    def close(self):
        pass


def standing_person(size: int = 64):
    from turbonext.pose.keypoints import Person

    rel = np.array([(0, 0.05), (-0.02, 0.03), (0.02, 0.03), (-0.04, 0.04), (0.04, 0.04), (-0.1, 0.18), (0.1, 0.18),
                    (-0.14, 0.35), (0.14, 0.35), (-0.15, 0.5), (0.15, 0.5), (-0.07, 0.52), (0.07, 0.52),
                    (-0.07, 0.75), (0.07, 0.75), (-0.07, 0.98), (0.07, 0.98)])
    kp = np.ones((17, 3), np.float32)
    kp[:, 0] = size / 2 + rel[:, 0] * 0.8 * size
    kp[:, 1] = 0.1 * size + rel[:, 1] * 0.8 * size
    return Person(kp)


def first_tile(result) -> np.ndarray:
    return result.pose_preview[:, :128]  # pose_strip: the first pose map always leads, 128 px high


def tile(pose) -> np.ndarray:
    from PIL import Image

    image = pose if isinstance(pose, Image.Image) else Image.fromarray(pose)
    return np.asarray(image.convert("RGB").resize((128, 128), Image.BILINEAR))


def test_the_motion_can_start_from_the_made_persons_pose(tiny_pipe_factory, tmp_path):
    from turbonext.jobs.clip import render_clip
    from turbonext.pose.render import render_pose

    pipe, poses, person = tiny_pipe_factory(), make_pose_frames(3), standing_person()
    detector = StubDetector([person])
    kwargs = dict(num_inference_steps=1, max_frames=3, description="a dancer in a red dress", out_dir=tmp_path)
    plain = render_clip(pipe, None, poses, detector=detector, **kwargs)
    assert plain.num_frames == 3 and detector.calls == 0  # off by default: the driving poses only
    started = render_clip(pipe, None, poses, detector=detector, start_from_made_pose=True, **kwargs)
    assert detector.calls == 1 and started.num_frames == 4 and not started.notices  # one more frame, first
    np.testing.assert_array_equal(started.made_reference, plain.made_reference)
    np.testing.assert_array_equal(first_tile(started), tile(render_pose([person], size=(64, 64), style="turbonext")))
    assert not np.array_equal(first_tile(started), tile(poses[0]))


def test_no_person_in_the_made_image_is_a_notice_and_the_usual_clip(tiny_pipe_factory, tmp_path):
    from conftest import make_reference

    from turbonext.jobs.clip import render_clip

    pipe, poses = tiny_pipe_factory(), make_pose_frames(2)
    kwargs = dict(num_inference_steps=1, max_frames=2, out_dir=tmp_path, start_from_made_pose=True)
    for detector in (StubDetector([]), None):
        out = render_clip(pipe, None, poses, detector=detector, description="a dancer", **kwargs)
        assert out.num_frames == 2 and out.made_reference is not None
        np.testing.assert_array_equal(first_tile(out), tile(poses[0]))
        assert len(out.notices) == 1 and "the motion starts with the driving poses instead" in out.notices[0]
        assert ("No person was found in the made image" if detector else "no pose detector") in out.notices[0]
    photo = render_clip(pipe, make_reference(), poses, detector=StubDetector([standing_person()]), **kwargs)
    assert photo.num_frames == 2 and photo.made_reference is None  # a photo: nothing made, the option ignored
    assert any("made person's pose' was not used: a reference photo was given" in n for n in photo.notices)
