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
