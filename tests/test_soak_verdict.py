"""The soak benchmark's verdict (benchmarks/soak_live.py): RSS and a step measure, start vs end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def soak_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "soak_live.py"
    spec = importlib.util.spec_from_file_location("soak_live", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def samples(rss_end=1000.0, wall_end=1000.0, cpu_end=500.0, frames=1000):
    rows = []
    for frame in range(10, frames + 1, 10):
        late = frame > frames // 2
        rows.append({"frame": frame, "rss_mb": rss_end if late else 1000.0, "step_ms": wall_end if late else 1000.0,
                     "frame_ms": 250.0, "cpu_ms": cpu_end if late else 500.0, "python_objects": 1})
    return rows


def test_verdict_judges_rss_and_the_chosen_step_measure():
    soak = soak_module()
    assert soak.verdict(samples(), 1000, 0.05)["flat"]
    busy = samples(wall_end=2000.0)  # the machine got busy: wall time doubled, the process's CPU time did not
    assert not soak.verdict(busy, 1000, 0.05)["flat"]
    v = soak.verdict(busy, 1000, 0.05, judge="cpu")
    assert v["flat"] and v["judged_on"] == ["rss_mb", "cpu_ms"] and v["step_ms"]["change"] == pytest.approx(1.0)
    assert not soak.verdict(samples(rss_end=1100.0), 1000, 0.05, judge="cpu")["flat"]  # a leak fails either way
    assert not soak.verdict(samples(cpu_end=600.0), 1000, 0.05, judge="cpu")["flat"]  # a real slowdown too
    assert soak.verdict(samples(cpu_end=600.0), 1000, 0.05, judge="cpu")["cpu_ms"]["trend_per_1000_frames"] > 0


def test_verdict_reads_samples_without_cpu_time():
    rows = [{k: v for k, v in row.items() if k != "cpu_ms"} for row in samples()]  # a run made before cpu_ms
    v = soak_module().verdict(rows, 1000, 0.05)
    assert v["flat"] and v["cpu_ms"]["start"] is None
