"""Synthetic benchmark: deterministic, figures on black around their own keypoints, fixed split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from turbonext.commands.synthetic import cli_main
from turbonext.pose import render_pose
from turbonext.synthetic import (
    CLOTH_COLORS,
    HELD_OUT_CLOTH_COLORS,
    MOTIONS,
    SPLITS,
    Identity,
    draw_figure,
    identity_palette,
    load_scene,
    load_split,
    make_sequence,
    split_counts,
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
    # 3 identities: one each for train, validation and test (the last)
    assert split_of(0, "walk", 3) == "train" and split_of(1, "walk", 3) == "val_identity"
    assert split_of(2, "walk", 3) == "test_identity"
    assert split_of(0, "kick", 3) == "test_motion" and split_of(1, "kick", 3) == "val_both"
    assert split_of(2, "kick", 3) == "test_both"
    # a dataset from before the validation split: the last two test, no validation
    assert split_of(1, "walk", 3, num_val_identities=0, num_test_identities=2) == "test_identity"
    lists = [set(split[name]) for name in SPLITS]
    assert sum(len(s) for s in lists) == len(set().union(*lists)) == 3 * 2
    assert split["train"] == ["id000/walk_00"] and split["test_motion"] == ["id000/kick_00"]
    assert split["val_identity"] == ["id001/walk_00"] and split["test_identity"] == ["id002/walk_00"]
    meta = json.loads((root / "split.json").read_text())["meta"]
    assert meta["held_out_motion"] == "kick" and meta["val_identities"] == ["id001"] and meta["test_identities"] == ["id002"]
    # a test-only dataset holds the same scenes, byte for byte
    only = write_dataset(tmp_path / "test_only", seed=0, split="test_identity", **KW)
    assert only["test_identity"] == split["test_identity"] and only["train"] == []
    a = (root / split["test_identity"][0] / "images" / "00002.jpg").read_bytes()
    b = (tmp_path / "test_only" / split["test_identity"][0] / "images" / "00002.jpg").read_bytes()
    assert a == b


def test_default_dataset_has_disjoint_validation_and_16_test_identities(tmp_path):
    split = write_dataset(tmp_path, motions=("walk",), frames=1, size=32, progress=False)  # default identity counts
    meta = split["meta"]
    val, test = set(meta["val_identities"]), set(meta["test_identities"])
    train = {s.split("/")[0] for s in split["train"]}
    assert len(test) >= 16 and len(val) >= 4 and len(train) >= len(test)
    assert not (val & test) and not (train & (val | test))
    assert {s.split("/")[0] for s in split["test_identity"]} == test
    assert {s.split("/")[0] for s in split["val_identity"]} == val
    assert split_counts(load_split(tmp_path)) == (len(val), len(test))
    # half of the validation and of the test identities wear the held-out palette, no training identity does
    off = set(meta["off_palette_identities"])
    assert len(off & test) == len(test) // 2 and len(off & val) == len(val) // 2 and not off & train
    assert all(identity_palette(tmp_path, i) == ("held_out" if i in off else "train") for i in train | val | test)


def _distance_to_training_palette(color) -> int:
    """The largest channel difference to the nearest training colour (0-255)."""
    return int(np.abs(np.asarray(CLOTH_COLORS) - np.asarray(color)).max(axis=1).min())


def test_off_palette_identities_wear_colours_outside_the_training_palette():
    jitter = 12  # Identity.random moves every colour by up to this much per channel
    for seed in range(40):
        clothes = []
        for palette in ("train", "held_out"):
            ident = Identity.random(seed, palette=palette)
            assert ident.palette == palette and ident.to_dict()["palette"] == palette
            clothes.append([c for c in (ident.shirt_color, ident.shirt_color2, ident.trousers_color,
                                        ident.trousers_color2, ident.emblem_color) if c is not None])
        train, held_out = clothes
        assert all(_distance_to_training_palette(c) <= jitter for c in train)
        # farther from every training colour than two jitters: no training identity can wear it
        assert all(_distance_to_training_palette(c) > 3 * jitter for c in held_out), (seed, held_out)
    assert all(_distance_to_training_palette(c) >= 60 for c in HELD_OUT_CLOTH_COLORS)
    assert Identity.random(3) == Identity.random(3, palette="train")  # the default person is unchanged
    with pytest.raises(ValueError, match="palette"):
        Identity.random(0, palette="neon")


def test_legacy_dataset_still_reads(tmp_path):
    # Written as before the validation split: the last two identities test, no palette, no val lists.
    split = write_dataset(tmp_path, num_val_identities=0, num_test_identities=2, off_palette_fraction=0.0, **KW)
    assert split["test_identity"] == ["id001/walk_00", "id002/walk_00"] and split["val_identity"] == []
    legacy = {k: v for k, v in split.items() if k not in ("val_identity", "val_both")}
    legacy["meta"] = {k: v for k, v in split["meta"].items()
                      if k not in ("val_identities", "test_identities", "off_palette_identities", "off_palette_fraction")}
    legacy["meta"]["held_out_identities"] = ["id001", "id002"]
    (tmp_path / "split.json").write_text(json.dumps(legacy))
    for ident in ("id000", "id001", "id002"):
        path = tmp_path / ident / "identity.json"
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "palette"}))
    assert split_counts(load_split(tmp_path)) == (0, 2)
    assert identity_palette(tmp_path, "id002") == "train"


def test_validation_errors(tmp_path):
    with pytest.raises(ValueError):
        write_dataset(tmp_path, num_identities=2)
    with pytest.raises(ValueError, match="training identity"):
        write_dataset(tmp_path, num_identities=20, num_val_identities=4, num_test_identities=16)
    with pytest.raises(ValueError):
        write_dataset(tmp_path, motions=("moonwalk",))
    with pytest.raises(ValueError):
        make_sequence(0, "walk", num_frames=0)
    with pytest.raises(ValueError):
        draw_figure(Identity.random(0), np.zeros((5, 3)), 64)


def test_cli(tmp_path, capsys):
    assert cli_main(["--out", str(tmp_path / "d"), "--identities", "3", "--motions", "wave", "--frames", "2", "--size", "48"]) == 0
    assert "train: 1, val_identity: 1, val_both: 0, test_identity: 1" in capsys.readouterr().out
    assert (tmp_path / "d" / "id002" / "wave_00" / "poses" / "00002.jpg").is_file()
    assert cli_main(["--out", str(tmp_path / "e"), "--identities", "6", "--val-identities", "2", "--test-identities", "2",
                     "--off-palette", "1", "--motions", "wave", "--frames", "1", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "train: 2, val_identity: 2, val_both: 0, test_identity: 2" in out and "4 of them off the training palette" in out
