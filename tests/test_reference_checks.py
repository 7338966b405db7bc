"""The two appearance-transfer checks of issue 13 part 2 run end to end on a tiny model and a tiny dataset."""

import importlib.util
import json
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_setup(tiny_pipe_factory, tmp_path_factory):
    from turbonext.synthetic import write_dataset

    root = tmp_path_factory.mktemp("checks")
    data = root / "data"
    write_dataset(data, num_identities=3, motions=["walk", "wave"], frames=4, size=64, progress=False,
                  num_val_identities=0, num_test_identities=1)
    model = root / "model"
    tiny_pipe_factory().save_pretrained(model)
    return data, model


def test_reference_hue_check_scores_follow_and_colour_error(tiny_setup, tmp_path):
    data, model = tiny_setup
    out = tmp_path / "hue.json"
    result = _script("reference_hue_check").main([str(model), "--data", str(data), "--split", "train", "--scenes", "2",
                                                 "--frames", "2", "--steps", "2", "--angles", "120",
                                                 "--json", str(out)])
    assert json.loads(out.read_text())["summary"] == result["summary"]
    row = result["summary"]["120"]
    assert row["follow_reference_attention_off"]["max"] == 0.0  # nothing but the attention reads the reference
    assert row["follow"]["mean"] > 0.0  # a random tiny model's output moves with its reference
    assert 0.0 <= row["color_error"]["mean"] <= 1.0 and row["color_error_copy_reference"]["mean"] > 0
    assert len(result["per_scene"]) == 2 and "0" in result["summary"]


def test_reference_x0_follow_reports_each_pair_and_level(tiny_setup, tmp_path):
    data, model = tiny_setup
    scenes = sorted(p.relative_to(data).as_posix() for p in data.glob("*/*") if p.is_dir())
    pair = f"{scenes[0]}:{scenes[1]}"
    result = _script("reference_x0_follow").main([str(model), "--data", str(data), "--pairs", pair,
                                                 "--timesteps", "999,499", "--frames", "2", "--focus",
                                                 "--json", str(tmp_path / "x0.json")])
    assert [(r["pair"], r["t"]) for r in result["rows"]] == [(pair, 999), (pair, 499)]
    assert all(r["follow"] >= 0 and 0 <= r["colour_error"] <= 1 for r in result["rows"])
