"""evaluate() with fake pipelines on a tiny generated dataset (the real pipeline is not imported)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from turbonext.commands import eval as eval_command
from turbonext.evaluation import held_out as tn_eval
from turbonext.evaluation.metrics import PSNR_MAX_DB
from turbonext.synthetic import load_scene, write_dataset


SIZE = 64


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaldata")
    write_dataset(root, num_identities=3, motions=("walk", "wave", "kick"), frames=4, size=SIZE, progress=False)
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
    assert result["num_sequences"] == 4 and result["num_frames_scored"] == 4 * 3  # first frame is the reference
    assert m["psnr"] == PSNR_MAX_DB and m["ssim"] == pytest.approx(1.0) and m["iou"] == 1.0
    assert m["color_error"] == 0.0 and m["flicker"] == 0.0
    assert {"torso", "head"} <= set(result["parts"])
    assert pipe.calls[0] == {"steps": 2, "n": 4}


def test_degraded_models_score_worse(data):
    shifted = tn_eval.evaluate(OraclePipe(data, shift=5), data, lpips=False, progress=False)["metrics"]
    static = tn_eval.evaluate(ReferencePipe(), data, lpips=False, progress=False)["metrics"]
    for m in (shifted, static):
        assert m["psnr"] < 35 and m["ssim"] < 0.99 and m["iou"] < 0.95 and m["color_error"] > 0.0
    assert static["flicker"] < 0  # a frozen video moves less than the truth


def test_streaming_and_other_reference(data):
    pipe = OraclePipe(data)
    result = tn_eval.evaluate(pipe, data, split="test_motion", streaming=True, reference="other", window=8,
                              num_frames=3, lpips=False, progress=False)
    assert pipe.calls == [{"steps": 4, "window": 8}] and result["settings"]["window"] == 8
    assert result["num_sequences"] == 1 and result["num_frames_scored"] == 3
    assert result["metrics"]["iou"] == 1.0
    assert result["sequences"][0]["reference"].startswith("id000/") and "kick" not in result["sequences"][0]["reference"]


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
    assert "mean" in table and "id001/walk_00" in table
    saved = json.loads(out.read_text())
    assert saved["num_sequences"] == 2 and saved["model"] == "fake" and 0 < saved["metrics"]["iou"] < 1


def test_copy_reference_baseline_cli(data, capsys):
    assert eval_command.cli_main(["--model", "copy-reference", "--data", str(data), "--no-lpips", "--max-sequences", "1"]) == 0
    out = capsys.readouterr().out
    assert "id001/walk_00" in out and "ms per rendered frame" in out
