"""Long-stream evaluation: per-frame-index curves of a stream and of the offline clip, table, JSON, plot, CLI."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from turbonext.commands import eval as eval_command
from turbonext.evaluation.long_stream import evaluate_long_stream, format_long_stream, plot_long_stream
from turbonext.synthetic import load_scene, write_dataset


SIZE, FRAMES, DRIFT_AT = 64, 12, 5


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("longdata")
    write_dataset(root, num_identities=4, num_val_identities=1, num_test_identities=2, motions=("walk", "wave", "squat"),
                  frames=FRAMES, size=SIZE, progress=False)
    return root


@dataclass
class _Out:
    frames: list


class DriftingPipe:
    """Offline: the true frame of every pose. Streamed: the true frame for the first ``DRIFT_AT`` frames, then
    grey noise (what a stream that decays looks like)."""

    def __init__(self, root: Path) -> None:
        self.table = {}
        for scene in sorted(p.parent for p in root.rglob("keypoints.npy")):
            frames, poses, _ = load_scene(scene)
            self.table.update({np.asarray(p).tobytes(): f for f, p in zip(frames, poses)})
        self.stream_kwargs = []

    def __call__(self, reference_image, pose_images, num_inference_steps, generator, output_type):
        return _Out([[self.table[np.asarray(p).tobytes()] for p in pose_images]])

    def stream(self, reference_image, num_inference_steps, generator, **kwargs):
        self.stream_kwargs.append(kwargs)
        pipe, rng = self, np.random.default_rng(0)

        class Session:
            count = 0

            def step(self, pose):
                self.count += 1
                if self.count <= DRIFT_AT:
                    return [pipe.table[np.asarray(pose).tobytes()]]
                return [Image.fromarray(rng.integers(60, 140, (SIZE, SIZE, 3), dtype=np.uint8))]

            def flush(self):
                return []

        return Session()


def test_per_frame_curves_show_where_a_stream_drifts(data, tmp_path):
    pipe = DriftingPipe(data)
    result = evaluate_long_stream(pipe, data, num_frames=FRAMES, window=8, frames_per_level=4, schedule="uniform",
                                  max_identities=1, scenes_per_identity=2, late_from=6, progress=False)
    assert result["scenes"] == ["id002/squat_00", "id002/walk_00"]
    assert pipe.stream_kwargs == [{"window": 8, "frames_per_level": 4, "schedule": "uniform"}] * 2
    assert all(not s["reference"].startswith(s["scene"]) and s["reference"].startswith("id002/")
               for s in result["per_scene"])  # another clip of the same identity
    stream, offline = result["per_frame"]["stream"], result["per_frame"]["offline"]
    assert len(stream["background"]) == FRAMES and offline["iou"] == [1.0] * FRAMES
    assert max(stream["background"][:DRIFT_AT]) < 1 and min(stream["background"][DRIFT_AT:]) > 50
    assert stream["iou"][:DRIFT_AT] == [1.0] * DRIFT_AT and max(stream["iou"][DRIFT_AT:]) < 0.5
    summary = result["summary"]
    assert summary["stream"]["max_background"] > 50 and summary["offline"]["max_background"] < 1
    assert result["late_ratio"]["iou"] < 0.5 and result["late_ratio"]["background"] > 50
    table = format_long_stream(result)
    assert "background brightness" in table and ">= 6" in table
    png = plot_long_stream(result, tmp_path / "curves.png")
    assert Image.open(png).size[0] > 400


def test_cli_streaming_writes_json_and_plot(data, tmp_path, monkeypatch, capsys):
    class FakePipeline:
        @classmethod
        def from_pretrained(cls, path):
            pipe = DriftingPipe(data)
            pipe.to = lambda device: pipe
            return pipe

    monkeypatch.setattr(eval_command, "TurboNextPipeline", FakePipeline)
    out = tmp_path / "long.json"
    rc = eval_command.cli_main(["--model", "fake", "--data", str(data), "--streaming", "--num-frames", str(FRAMES),
                                "--window", "8", "--schedule", "staggered", "--max-identities", "2",
                                "--scenes-per-identity", "1", "--device", "cpu", "--json", str(out)])
    assert rc == 0
    saved = json.loads(out.read_text())
    assert saved["settings"]["schedule"] == "staggered" and saved["scenes"] == ["id002/squat_00", "id003/squat_00"]
    assert len(saved["per_frame"]["stream"]["psnr"]) == FRAMES and out.with_suffix(".png").exists()
    assert "wrote" in capsys.readouterr().out


def test_errors(data):
    pipe = DriftingPipe(data)
    with pytest.raises(ValueError, match="fewer than num_frames"):
        evaluate_long_stream(pipe, data, num_frames=FRAMES + 1, progress=False)
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate_long_stream(pipe, data, split="nope", progress=False)
    with pytest.raises(ValueError, match="needs a model with .stream"):
        evaluate_long_stream(object(), data, progress=False)
    with pytest.raises(SystemExit):
        eval_command.cli_main(["--model", "black-frame", "--data", str(data), "--streaming"])
