"""Several people (issue 16): group scenes, one pose map with every skeleton, per-person scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from turbonext.evaluation.group_scenes import evaluate_group_scenes, format_group_scenes, person_scores
from turbonext.synthetic.figure import Identity
from turbonext.synthetic.group import make_group_sequence


def test_group_scenes_put_each_person_in_their_slot():
    scene = make_group_sequence([Identity.random(1), Identity.random(2)], ["walk", "wave"], num_frames=3, size=128)
    assert scene.keypoints.shape == (2, 3, 17, 3) and scene.masks.shape == (2, 3, 128, 128)
    assert not (scene.masks[0] & scene.masks[1]).any()
    assert scene.masks[0][:, :, 64:].sum() == 0 and scene.masks[1][:, :, :64].sum() == 0  # own halves
    pose = np.asarray(scene.poses[0])
    assert pose[:, :64].any() and pose[:, 64:].any()  # one map, both skeletons
    with pytest.raises(ValueError, match="2 to 4 people"):
        make_group_sequence([Identity.random(1)], ["walk"])


def test_person_scores_see_a_missing_person():
    scene = make_group_sequence([Identity.random(3), Identity.random(4)], ["squat", "walk"], num_frames=1, size=128)
    gt = np.asarray(scene.frames[0])
    half = gt.copy()
    half[:, 64:] = 0  # the second person dropped
    left, right = slice(0, 64), slice(64, 128)
    assert person_scores(half, gt, scene.masks[0, 0], left)["iou"] == 1.0
    assert person_scores(half, gt, scene.masks[1, 0], right)["iou"] == 0.0
    assert person_scores(gt, gt, scene.masks[1, 0], right)["color_error"] == 0.0


@dataclass
class _Out:
    frames: list


class Oracle:
    """Returns the true frames (the scene is regenerated from the same seeds)."""

    def __init__(self, drop_second: bool = False):
        self.drop_second, self.truth = drop_second, None

    def __call__(self, reference_image, pose_images, **kwargs):
        frames = [self.truth[np.asarray(p).tobytes()].copy() for p in pose_images]
        if self.drop_second:
            for f in frames:
                f[:, f.shape[1] // 2:] = 0
        return _Out([frames])


def test_evaluate_group_scenes_scores_every_person(monkeypatch):
    from turbonext.evaluation import group_scenes

    oracle = Oracle()
    real = group_scenes.make_group_sequence

    def remember(*args, **kwargs):
        scene = real(*args, **kwargs)
        oracle.truth = {**(oracle.truth or {}), **{np.asarray(p).tobytes(): np.asarray(f) for p, f in
                                                   zip(scene.poses, scene.frames)}}
        return scene

    monkeypatch.setattr(group_scenes, "make_group_sequence", remember)
    monkeypatch.setattr(group_scenes, "native_size", lambda pipe: 96)
    result = evaluate_group_scenes(oracle, num_scenes=2, num_frames=2)
    assert result["metrics"]["iou"] == 1.0 and result["metrics"]["color_error"] == 0.0
    assert result["baselines"]["black frame"]["iou"] == 0.0
    oracle.drop_second = True
    dropped = evaluate_group_scenes(oracle, num_scenes=2, num_frames=2)
    assert dropped["per_person"][0]["iou"] == 1.0 and dropped["per_person"][1]["iou"] == 0.0
    assert dropped["worst_person_iou"] == 0.0 and "person 1" in format_group_scenes(dropped)
