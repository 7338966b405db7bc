"""Metrics: identical -> perfect, shifted -> worse, a black or frozen frame cannot score well, optional LPIPS/FID skip cleanly."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from turbonext.evaluation import metrics
from turbonext.synthetic import Identity, make_sequence


SIZE = 96


@pytest.fixture(scope="module")
def sequence():
    frames, poses, keypoints = make_sequence(Identity.random(7), "dance", num_frames=4, size=SIZE, seed=1)
    return frames, keypoints


def _shift(image, dx: int = 6):
    return np.roll(np.asarray(image), dx, axis=1)


def test_import_is_torch_free():
    import subprocess

    code = "import sys, turbonext.evaluation.metrics, turbonext.synthetic; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_identical_is_perfect(sequence):
    frames, keypoints = sequence
    f, kp = frames[0], keypoints[0]
    assert metrics.psnr(f, f) == metrics.PSNR_MAX_DB
    assert metrics.ssim(f, f) == pytest.approx(1.0)
    assert metrics.silhouette_iou(f, f) == 1.0
    errors = metrics.part_color_error(f, f, kp)
    assert errors["mean"] == 0.0 and {"torso", "head", "left_thigh"} <= set(errors)
    assert metrics.temporal_flicker(frames, frames) == 0.0
    assert metrics.ssim_box(f, f) == pytest.approx(1.0) and metrics.figure_color_error(f, f) == 0.0
    scores = metrics.score_sequence(frames, frames, keypoints)
    assert set(metrics.METRIC_KEYS) <= set(scores)
    assert scores["psnr"] == metrics.PSNR_MAX_DB and scores["iou"] == 1.0 and scores["ssim_box"] == pytest.approx(1.0)
    assert scores["color_error"] == 0.0 and scores["part_color_error"] == 0.0 and scores["flicker"] == 0.0


def test_shifted_is_worse(sequence):
    frames, keypoints = sequence
    f, kp = frames[0], keypoints[0]
    shifted = _shift(f)
    assert metrics.psnr(shifted, f) < 30
    assert metrics.ssim(shifted, f) < 0.95
    assert metrics.silhouette_iou(shifted, f) < 0.9
    assert metrics.part_color_error(shifted, f, kp)["mean"] > 0.01
    assert metrics.ssim_box(shifted, f) < 0.9 and metrics.figure_color_error(shifted, f) > 0.05
    # further shift -> worse still
    assert metrics.silhouette_iou(_shift(f, 12), f) < metrics.silhouette_iou(shifted, f)


def test_wrong_identity_raises_colour_error(sequence):
    frames, keypoints = sequence
    other, _, _ = make_sequence(Identity.random(8), "dance", num_frames=1, size=SIZE, seed=1)
    # same motion seed -> same pose path; only the look differs (body shape may move joints a little)
    assert metrics.part_color_error(other[0], frames[0], keypoints[0])["mean"] > 0.03


def test_flicker_is_a_non_negative_jitter_measure():
    rng = np.random.default_rng(0)
    still = [np.full((32, 32, 3), 120, np.uint8)] * 5
    flicker = [np.clip(120 + rng.integers(-40, 41, (32, 32, 3)), 0, 255).astype(np.uint8) for _ in range(5)]
    assert metrics.temporal_flicker(still, still) == 0.0
    assert metrics.temporal_flicker(flicker, still) > 0.05
    assert metrics.temporal_flicker(still, flicker) > 0.05  # over-smoothed is wrong too (was negative)
    brighter = [np.clip(f.astype(int) + 10, 0, 255).astype(np.uint8) for f in still]
    assert metrics.temporal_flicker(brighter, still) == 0.0  # a constant offset does not jitter


def test_static_black_output_does_not_beat_the_truth(sequence):
    # The old signed flicker scored a static black clip below the truth (negative = "steadier than real").
    frames, keypoints = sequence
    black = [np.zeros_like(np.asarray(f)) for f in frames]
    frozen = [frames[0]] * len(frames)
    truth = metrics.temporal_flicker(frames, frames)
    assert truth == 0.0
    assert metrics.temporal_flicker(black, frames) > truth + 1e-3
    assert metrics.temporal_flicker(frozen, frames) > truth + 1e-3


def test_black_frame_scores_low_inside_the_figure(sequence):
    frames, keypoints = sequence
    f = frames[0]
    black = np.zeros_like(np.asarray(f))
    assert metrics.ssim(black, f) > 0.75  # whole-frame SSIM flatters: the background is black too
    assert metrics.ssim_box(black, f) < 0.55 and metrics.ssim_box(black, f) < metrics.ssim(black, f) - 0.25
    figure = np.asarray(f, np.float32)[metrics.foreground_mask(f)] / 255
    assert metrics.figure_color_error(black, f) == pytest.approx(figure.mean(), abs=1e-6)  # every figure pixel wrong
    assert metrics.figure_color_error(black, f) > 0.2
    scores = metrics.score_sequence([black] * len(frames), frames, keypoints)
    assert scores["iou"] == 0.0 and scores["ssim_box"] < 0.55 and scores["color_error"] > 0.2


def test_figure_box_and_empty_truth():
    truth = np.zeros((40, 40, 3), np.uint8)
    truth[10:20, 25:28] = 200
    rows, cols = metrics.figure_box(truth)
    assert rows.start <= 10 and rows.stop >= 20 and cols.start <= 25 and cols.stop >= 28
    assert rows.stop - rows.start < 20 and cols.stop - cols.start >= 7  # tight, but wide enough for SSIM's window
    empty = np.zeros((16, 16, 3), np.uint8)
    assert metrics.figure_box(empty) is None
    assert np.isnan(metrics.ssim_box(empty, empty)) and np.isnan(metrics.figure_color_error(empty, empty))


def test_input_validation():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError):
        metrics.psnr(a, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError):
        metrics.temporal_flicker([a], [a])
    with pytest.raises(ValueError):
        metrics.body_part_masks(np.zeros((5, 3)), (16, 16))
    assert metrics.silhouette_iou(a, a) == 1.0  # both empty


def test_optional_metrics_skip_cleanly(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("lpips", "torch_fidelity") else real(name, *a))
    ok, reason = metrics.lpips_available()
    assert not ok and reason.startswith("LPIPS skipped")
    assert metrics.lpips_distance([np.zeros((8, 8, 3))], [np.zeros((8, 8, 3))]) is None
    ok, reason = metrics.fid_available()
    assert not ok and reason.startswith("FID skipped")
    assert metrics.fid_score([np.zeros((8, 8, 3))], [np.zeros((8, 8, 3))]) is None


def test_optional_metrics_report_state():
    # Whatever is installed here, these answer without downloading or raising.
    for ok, reason in (metrics.lpips_available(), metrics.fid_available()):
        assert isinstance(ok, bool) and reason


def test_lpips_skips_when_weights_missing(monkeypatch, tmp_path):
    import importlib.machinery
    import importlib.util

    real = importlib.util.find_spec
    fake = importlib.machinery.ModuleSpec("lpips", None, origin=str(tmp_path / "lpips" / "__init__.py"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake if name in ("lpips", "torchvision") else real(name, *a))
    ok, reason = metrics.lpips_available()
    assert not ok and "missing" in reason


def test_background_brightness_reads_only_where_the_truth_is_black():
    from turbonext.evaluation.metrics import background_brightness

    truth = np.zeros((8, 8, 3), np.uint8)
    truth[:4] = 200  # figure in the top half
    truth[4, 0] = 9  # still background (below 10)
    pred = np.full((8, 8, 3), 20, np.uint8)
    pred[:4] = 255  # the figure does not count
    assert background_brightness(pred, truth) == pytest.approx(20.0)
    assert background_brightness(truth, truth) == pytest.approx(9 / 32)  # one background pixel at 9


def test_seam_ratio_sees_a_jump_at_the_joins():
    from turbonext.evaluation.metrics import seam_ratio

    smooth = [np.full((8, 8, 3), 10 * t, np.uint8) for t in range(12)]  # the same change everywhere
    assert seam_ratio(smooth, [4, 8]) == pytest.approx(1.0)
    jumpy = [np.full((8, 8, 3), 10 * t + (40 if t >= 4 else 0) + (40 if t >= 8 else 0), np.uint8) for t in range(12)]
    assert seam_ratio(jumpy, [4, 8]) == pytest.approx(5.0)  # 50 into a join, 10 elsewhere
    assert np.isnan(seam_ratio(smooth, []))
