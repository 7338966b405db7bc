"""Synthetic benchmark: deterministic, figures on black around their own keypoints, fixed split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from turbonext.commands.synthetic import cli_main
from turbonext.pose import render_pose
from turbonext.synthetic import (
    MOTIONS,
    SPLITS,
    Identity,
    draw_figure,
    load_scene,
    make_sequence,
    split_of,
    write_dataset,
)


SIZE = 64
KW = dict(num_identities=3, motions=("walk", "kick"), frames=3, size=SIZE, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    return root, write_dataset(root, seed=0, **KW)


def test_same_seed_same_bytes_different_seed_differs(dataset, tmp_path):
    root, _ = dataset
    write_dataset(tmp_path / "again", seed=0, **KW)
    write_dataset(tmp_path / "other", seed=1, **KW)
    first, again, other = _files(root), _files(tmp_path / "again"), _files(tmp_path / "other")
    assert first == again
    assert first.keys() == other.keys()
    assert first["id000/walk_00/images/00001.jpg"] != other["id000/walk_00/images/00001.jpg"]


def test_make_sequence_deterministic():
    a = make_sequence(3, "jump", num_frames=2, size=SIZE, seed=5)
    b = make_sequence(3, "jump", num_frames=2, size=SIZE, seed=5)
    c = make_sequence(3, "jump", num_frames=2, size=SIZE, seed=6)
    assert np.array_equal(np.asarray(a[0][1]), np.asarray(b[0][1])) and np.array_equal(a[2], b[2])
    assert not np.array_equal(a[2], c[2])


@pytest.mark.parametrize("motion", MOTIONS)
def test_figure_on_black_around_its_keypoints(motion):
    frames, poses, keypoints = make_sequence(Identity.random(11), motion, num_frames=4, size=96, seed=2)
    assert keypoints.shape == (4, 17, 3) and keypoints.dtype == np.float32
    for frame, pose, kp in zip(frames, poses, keypoints):
        img = np.asarray(frame)
        assert frame.size == pose.size == (96, 96)
        # pure black background: the border and most pixels are exactly 0
        assert img[0].max() == 0 and img[-1].max() == 0 and img[:, 0].max() == 0 and img[:, -1].max() == 0
        fg = img.max(-1) > 25
        assert 0.03 < fg.mean() < 0.5
        # every body joint sits on the figure (within 2 px) and the figure stays near its joints
        body = kp[5:, :2]
        for x, y in body:
            xi, yi = int(np.clip(x, 0, 95)), int(np.clip(y, 0, 95))
            assert fg[max(0, yi - 2): yi + 3, max(0, xi - 2): xi + 3].any(), (motion, x, y)
        ys, xs = np.nonzero(fg)
        dist = np.min(np.hypot(xs[:, None] - kp[:, 0], ys[:, None] - kp[:, 1]), axis=1)
        assert dist.max() < 0.25 * 96
        # the pose map is the rainbow skeleton of exactly these keypoints
        assert np.array_equal(np.asarray(pose), np.asarray(render_pose(kp[None], size=(96, 96))))


def test_written_pose_maps_match_keypoints(dataset):
    root, split = dataset
    frames, poses, keypoints = load_scene(root / split["train"][0])
    assert len(frames) == len(poses) == len(keypoints) == 3
    for i, (pose, kp) in enumerate(zip(poses, keypoints)):
        expected = np.asarray(render_pose(kp[None], size=(SIZE, SIZE)), np.float32)
        err = np.abs(np.asarray(pose, np.float32) - expected).mean()
        assert err < 6.0  # JPEG error only
        other = np.asarray(render_pose(keypoints[(i + 1) % 3][None], size=(SIZE, SIZE)), np.float32)
        assert np.abs(np.asarray(pose, np.float32) - other).mean() > err
    assert (root / split["train"][0] / "images" / "00001.jpg").is_file()
    assert json.loads((root / "id000" / "identity.json").read_text())["seed"] >= 0


def test_identities_differ_visibly():
    _, _, keypoints = make_sequence(0, "wave", num_frames=1, size=128, seed=0)
    images = [np.asarray(draw_figure(Identity.random(s), keypoints[0], 128), np.float32) for s in range(6)]
    for i in range(6):
        for j in range(i + 1, 6):
            assert np.abs(images[i] - images[j]).mean() > 2.0, (i, j)
    assert len({(Identity.random(s).shirt_color, Identity.random(s).skin) for s in range(6)}) == 6


def test_turn_swaps_left_and_right():
    _, _, kp = make_sequence(4, "turn", num_frames=40, size=SIZE, seed=0)
    side = np.sign(kp[:, 5, 0] - kp[:, 6, 0])  # left shoulder right of the right one = facing us
    assert (side > 0).any() and (side < 0).any()
    back = side < 0
    assert (kp[back, 0, 2] == 0).mean() > 0.5  # the nose is hidden when seen from behind


def test_split_is_fixed_and_disjoint(dataset, tmp_path):
    root, split = dataset
    assert split_of(0, "walk", 3) == "train" and split_of(1, "walk", 3) == "test_identity"
    assert split_of(0, "kick", 3) == "test_motion" and split_of(2, "kick", 3) == "test_both"
    lists = [set(split[name]) for name in SPLITS]
    assert sum(len(s) for s in lists) == len(set().union(*lists)) == 3 * 2
    assert split["train"] == ["id000/walk_00"] and split["test_motion"] == ["id000/kick_00"]
    assert json.loads((root / "split.json").read_text())["meta"]["held_out_motion"] == "kick"
    # a test-only dataset holds the same scenes, byte for byte
    only = write_dataset(tmp_path / "test_only", seed=0, split="test_identity", **KW)
    assert only["test_identity"] == split["test_identity"] and only["train"] == []
    a = (root / split["test_identity"][0] / "images" / "00002.jpg").read_bytes()
    b = (tmp_path / "test_only" / split["test_identity"][0] / "images" / "00002.jpg").read_bytes()
    assert a == b


def test_validation_errors(tmp_path):
    with pytest.raises(ValueError):
        write_dataset(tmp_path, num_identities=2)
    with pytest.raises(ValueError):
        write_dataset(tmp_path, motions=("moonwalk",))
    with pytest.raises(ValueError):
        make_sequence(0, "walk", num_frames=0)
    with pytest.raises(ValueError):
        draw_figure(Identity.random(0), np.zeros((5, 3)), 64)


def test_cli(tmp_path, capsys):
    assert cli_main(["--out", str(tmp_path / "d"), "--identities", "3", "--motions", "wave", "--frames", "2", "--size", "48"]) == 0
    assert "train: 1, test_identity: 2" in capsys.readouterr().out
    assert (tmp_path / "d" / "id002" / "wave_00" / "poses" / "00002.jpg").is_file()
