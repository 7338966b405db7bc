"""evaluate() with fake pipelines on a tiny generated dataset (the real pipeline is not imported):
the reference from another clip, baselines on the same frames, spread over identities, shuffled poses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from turbonext.commands import eval as eval_command
from turbonext.evaluation import held_out as tn_eval
from turbonext.evaluation.ablations import ablations_for, evaluate_ablations, format_ablation_table
from turbonext.evaluation.metrics import METRIC_KEYS, PSNR_MAX_DB
from turbonext.synthetic import load_scene, write_dataset


SIZE = 64


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaldata")
    # id000 train, id001 validation, id002 and id003 test (id003 off the training palette)
    write_dataset(root, num_identities=4, num_val_identities=1, num_test_identities=2, motions=("walk", "wave", "kick"),
                  frames=4, size=SIZE, progress=False)
    return root


@dataclass
class _Out:
    frames: list


class OraclePipe:
    """Returns the ground-truth frame of every pose map (looked up by the pose's pixels)."""

    def __init__(self, root: Path, shift: int = 0) -> None:
        self.table: dict[bytes, Image.Image] = {}
        for scene in sorted(p.parent for p in root.rglob("keypoints.npy")):
            frames, poses, _ = load_scene(scene)
            for frame, pose in zip(frames, poses):
                self.table[np.asarray(pose).tobytes()] = frame
        self.shift = shift
        self.calls: list[dict] = []

    def frame(self, pose: Image.Image) -> Image.Image:
        gt = np.asarray(self.table[np.asarray(pose).tobytes()])
        return Image.fromarray(np.roll(gt, self.shift, axis=1))

    def __call__(self, reference_image, pose_images, num_inference_steps, generator, output_type):
        assert output_type == "pil" and isinstance(reference_image, Image.Image)
        self.calls.append({"steps": num_inference_steps, "n": len(pose_images)})
        return _Out([[self.frame(p) for p in pose_images]])

    def stream(self, reference_image, num_inference_steps, window, generator):
        self.calls.append({"steps": num_inference_steps, "window": window})
        return _Session(self, latency=2)


class _Session:
    """Emits each frame ``latency`` poses late, the rest on flush (like a pipelined stream)."""

    def __init__(self, pipe: OraclePipe, latency: int) -> None:
        self.pipe, self.latency, self.pending = pipe, latency, []

    def step(self, pose):
        self.pending.append(self.pipe.frame(pose))
        return [self.pending.pop(0)] if len(self.pending) > self.latency else []

    def flush(self):
        out, self.pending = self.pending, []
        return out


class ReferencePipe:
    """Ignores the poses and returns the reference image: right colours, wrong pose."""

    def __call__(self, reference_image, pose_images, **kwargs):
        return _Out([[reference_image.copy() for _ in pose_images]])


def test_oracle_is_perfect(data):
    pipe = OraclePipe(data)
    result = tn_eval.evaluate(pipe, data, split="test_identity", num_inference_steps=2, lpips=False, progress=False)
    m = result["metrics"]
    assert result["num_sequences"] == 4 and result["num_frames_scored"] == 4 * 4  # every frame scored
    assert m["psnr"] == PSNR_MAX_DB and m["ssim_box"] == pytest.approx(1.0) and m["iou"] == 1.0
    assert m["color_error"] == 0.0 and m["part_color_error"] == 0.0 and m["flicker"] == 0.0
    assert set(METRIC_KEYS) == set(m)
    assert {"torso", "head"} <= set(result["parts"])
    assert pipe.calls[0] == {"steps": 2, "n": 4}
    assert result["beats_baseline"]["copy reference"]["iou"] == [2, 2]


def test_default_reference_is_another_clip_of_the_same_identity(data):
    result = tn_eval.evaluate(OraclePipe(data), data, lpips=False, progress=False)
    assert result["settings"]["reference"] == "other"
    for row in result["sequences"]:
        ref_scene = row["reference"].split("#")[0]
        assert ref_scene.split("/")[0] == row["scene"].split("/")[0] and ref_scene != row["scene"]
        assert ref_scene.split("/")[1].split("_")[0] != row["scene"].split("/")[1].split("_")[0]  # another motion
    assert tn_eval.reference_scene("id002/walk_00", ["id002/walk_00", "id002/walk_01", "id002/wave_00"]) == "id002/wave_00"
    assert tn_eval.reference_scene("id002/walk_00", ["id002/walk_00", "id002/walk_01"]) == "id002/walk_01"
    with pytest.raises(ValueError, match="another clip"):
        tn_eval.reference_scene("id002/walk_00", ["id002/walk_00", "id003/walk_00"])
    # "first" only when asked for: the clip's own first frame, which is then not scored
    first = tn_eval.evaluate(OraclePipe(data), data, reference="first", lpips=False, progress=False)
    assert first["num_frames_scored"] == 4 * 3 and first["sequences"][0]["reference"] == first["sequences"][0]["scene"] + "#1"


def test_baselines_are_scored_on_the_same_frames_and_reference(data):
    result = tn_eval.evaluate(OraclePipe(data, shift=5), data, lpips=False, progress=False)
    assert set(result["baselines"]) == {"copy reference", "black frame"}
    for name, cls in (("copy reference", tn_eval.CopyReferenceBaseline), ("black frame", tn_eval.BlackFrameBaseline)):
        alone = tn_eval.evaluate(cls(), data, lpips=False, progress=False)
        assert alone["sequences"][0]["reference"] == result["sequences"][0]["reference"]
        for key in METRIC_KEYS:
            assert result["baselines"][name][key] == pytest.approx(alone["metrics"][key], nan_ok=True), (name, key)
            assert result["baseline_spread"][name][key]["n"] == 2
    black = result["baselines"]["black frame"]
    assert black["iou"] == 0.0 and black["ssim_box"] < 0.6 and black["color_error"] > 0.2 and black["flicker"] > 0
    assert result["baselines"]["copy reference"]["iou"] < result["metrics"]["iou"]


def test_spread_over_identities_and_palettes(data):
    result = tn_eval.evaluate(OraclePipe(data, shift=5), data, lpips=False, progress=False)
    per_identity = result["per_identity"]
    assert set(per_identity) == {"id002", "id003"} and result["num_identities"] == 2
    assert per_identity["id002"]["palette"] == "train" and per_identity["id003"]["palette"] == "held_out"
    for key in ("psnr", "iou", "color_error"):
        values = [per_identity[i][key] for i in per_identity]
        spread = result["spread"][key]
        assert spread["mean"] == pytest.approx(np.mean(values)) == pytest.approx(result["metrics"][key])
        assert spread["std"] == pytest.approx(np.std(values, ddof=1))
        assert spread["min"] == min(values) and spread["max"] == max(values) and spread["n"] == 2
    assert result["by_palette"]["held_out"]["metrics"]["iou"] == pytest.approx(per_identity["id003"]["iou"])
    table = tn_eval.format_table(result)
    for row in ("model: mean over 2 identities", "model: std", "model: min", "model: max", "off-palette identities (1)",
                "baseline: copy reference", "baseline: black frame", "model beats copy reference in"):
        assert row in table, row


def test_validation_split_is_separate(data):
    result = tn_eval.evaluate(OraclePipe(data), data, split="val_identity", lpips=False, progress=False)
    assert set(result["per_identity"]) == {"id001"} and result["num_sequences"] == 2


def test_degraded_models_score_worse(data):
    shifted = tn_eval.evaluate(OraclePipe(data, shift=5), data, lpips=False, progress=False)["metrics"]
    static = tn_eval.evaluate(ReferencePipe(), data, lpips=False, progress=False)["metrics"]
    for m in (shifted, static):
        assert m["psnr"] < 35 and m["ssim_box"] < 0.99 and m["iou"] < 0.95 and m["color_error"] > 0.0
    assert static["flicker"] > 0  # a frozen video is wrong in time too (the old signed flicker rewarded it)


def test_pose_shuffled_lowers_iou_of_a_model_that_follows_the_pose(data):
    pipe = OraclePipe(data)  # draws exactly the figure of the pose it is given
    own = tn_eval.evaluate(pipe, data, lpips=False, progress=False)
    shuffled = tn_eval.evaluate(pipe, data, poses="shuffled", lpips=False, progress=False)
    for row in shuffled["sequences"]:
        assert row["poses_from"].split("/")[0] != row["identity"]  # another identity's clip
    assert own["metrics"]["iou"] == 1.0 and shuffled["metrics"]["iou"] < 0.6
    # the same through the ablations, in their style: a fake model has no modules to switch off
    assert set(ablations_for(pipe)) == {"full model", "pose shuffled"}
    variants = evaluate_ablations(pipe, tn_eval.evaluate, dataset_dir=data, lpips=False, progress=False)
    assert variants["pose shuffled"]["metrics"]["iou"] < variants["full model"]["metrics"]["iou"]
    table = format_ablation_table(variants)
    assert "(helps 2/2)" in table and "| baseline: black frame |" in table and "IoU falls" in table


def test_streaming_and_other_reference(data):
    pipe = OraclePipe(data)
    result = tn_eval.evaluate(pipe, data, split="test_motion", streaming=True, reference="other", window=8,
                              num_frames=3, lpips=False, progress=False)
    assert pipe.calls == [{"steps": 4, "window": 8}] and result["settings"]["window"] == 8
    assert result["num_sequences"] == 1 and result["num_frames_scored"] == 3
    assert result["metrics"]["iou"] == 1.0
    assert result["sequences"][0]["reference"].startswith("id000/") and "kick" not in result["sequences"][0]["reference"]


def test_legacy_dataset_evaluates(tmp_path):
    # A dataset from before the validation split and palettes: two test identities, no val lists.
    root = tmp_path / "legacy"
    split = write_dataset(root, num_identities=3, num_val_identities=0, num_test_identities=2, off_palette_fraction=0.0,
                          motions=("walk", "wave"), frames=3, size=SIZE, progress=False)
    legacy = {k: v for k, v in split.items() if k not in ("val_identity", "val_both")}
    legacy["meta"] = {"num_identities": 3, "held_out_identities": ["id001", "id002"], "held_out_motion": "kick"}
    (root / "split.json").write_text(json.dumps(legacy))
    for ident in ("id000", "id001", "id002"):
        path = root / ident / "identity.json"
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "palette"}))
    result = tn_eval.evaluate(OraclePipe(root), root, lpips=False, progress=False)
    assert result["num_identities"] == 2 and result["metrics"]["iou"] == 1.0 and set(result["by_palette"]) == {"train"}


def test_lpips_skips_with_reason(data, monkeypatch):
    monkeypatch.setattr(tn_eval.metrics, "lpips_available", lambda net="alex": (False, "LPIPS skipped: test"))
    result = tn_eval.evaluate(OraclePipe(data), data, max_sequences=1, progress=False)
    assert result["skipped"] == {"lpips": "LPIPS skipped: test"} and "lpips" not in result["metrics"]
    assert "LPIPS skipped: test" in tn_eval.format_table(result)


def test_errors(data, tmp_path):
    class Short(OraclePipe):
        def __call__(self, reference_image, pose_images, **kwargs):
            return _Out([[self.frame(p) for p in pose_images[:-1]]])

    with pytest.raises(ValueError, match="returned 3 frames for 4 poses"):
        tn_eval.evaluate(Short(data), data, lpips=False, progress=False)
    with pytest.raises(ValueError, match="split"):
        tn_eval.evaluate(OraclePipe(data), data, split="nope", progress=False)
    with pytest.raises(ValueError, match="split.json"):
        tn_eval.evaluate(OraclePipe(data), tmp_path, progress=False)
    with pytest.raises(ValueError, match="stream"):
        tn_eval.evaluate(ReferencePipe(), data, streaming=True, lpips=False, progress=False)


def test_cli_with_fake_model(data, tmp_path, monkeypatch, capsys):
    class FakePipeline:
        @classmethod
        def from_pretrained(cls, path):
            pipe = OraclePipe(data, shift=3)
            pipe.to = lambda device: pipe
            return pipe

    monkeypatch.setattr(eval_command, "TurboNextPipeline", FakePipeline)
    out = tmp_path / "r.json"
    rc = eval_command.cli_main(["--model", "fake", "--data", str(data), "--split", "test_identity", "--max-sequences", "2",
                           "--device", "cpu", "--no-lpips", "--json", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "model: mean over 1 identities" in table and "id002 (2 scenes)" in table and "baseline: black frame" in table
    saved = json.loads(out.read_text())
    assert saved["num_sequences"] == 2 and saved["model"] == "fake" and 0 < saved["metrics"]["iou"] < 1
    assert saved["settings"]["reference"] == "other" and set(saved["baselines"]) == {"copy reference", "black frame"}


def test_baseline_models_cli(data, capsys):
    for model in ("copy-reference", "black-frame"):
        assert eval_command.cli_main(["--model", model, "--data", str(data), "--no-lpips", "--max-sequences", "1"]) == 0
        out = capsys.readouterr().out
        assert "id002 (1 scenes)" in out and "ms per rendered frame" in out
    help_text = eval_command.build_parser().format_help()
    assert "FLATTERS" in help_text
