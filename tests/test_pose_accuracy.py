"""Pose accuracy of generated frames (issue 16): PCK and OKS against the driving pose, with the detector's ceiling."""

from __future__ import annotations

import numpy as np
import pytest
from test_eval import OraclePipe, data  # noqa: F401  (the module-scoped synthetic dataset fixture)

from turbonext.evaluation import held_out as tn_eval
from turbonext.evaluation.pose_accuracy import oks, pck, pose_accuracy
from turbonext.pose.keypoints import Person
from turbonext.synthetic import load_scene


def test_pck_and_oks():
    truth = np.zeros((17, 3))
    truth[:, 0], truth[:, 1], truth[:, 2] = np.linspace(0, 100, 17), np.linspace(0, 200, 17), 1.0
    assert pck(truth[:, :2], truth) == 1.0 and oks(truth[:, :2], truth) == pytest.approx(1.0)
    off = truth[:, :2] + [0, 30]  # 30 px off, the box's larger side is 200: within 0.2 x 200
    assert pck(off, truth) == 1.0 and pck(off, truth, alpha=0.1) == 0.0
    assert 0 < oks(off, truth) < 1
    assert pck(None, truth) == 0.0 and oks(None, truth) == 0.0  # nobody detected
    truth[2:, 2] = 0
    truth[1, 2] = 0
    assert np.isnan(pck(truth[:, :2], truth))  # fewer than 2 visible keypoints: no score


class TableDetector:
    """Finds the dataset's true keypoints in its own frames (looked up by pixels), nobody elsewhere."""

    def __init__(self, root):
        self.table = {}
        for scene in sorted(p.parent for p in root.rglob("keypoints.npy")):
            frames, _, keypoints = load_scene(scene)
            for frame, kp in zip(frames, keypoints):
                self.table[np.asarray(frame).tobytes()] = kp

    def detect(self, image):
        kp = self.table.get(np.asarray(image).tobytes())
        return [] if kp is None else [Person.from_array(kp)]


def test_evaluate_reports_pose_accuracy_with_its_ceiling(data):  # noqa: F811
    detector = TableDetector(data)
    result = tn_eval.evaluate(OraclePipe(data), data, lpips=False, progress=False, pose_detector=detector)
    assert result["metrics"]["pck"] == 1.0 and result["metrics"]["oks"] == pytest.approx(1.0)
    assert result["pose_accuracy_ceiling"] == {"pck": 1.0, "oks": pytest.approx(1.0), "detected": 1.0}
    assert result["baselines"]["black frame"]["pck"] == 0.0  # nobody there
    assert result["baselines"]["copy reference"]["pck"] < 1.0  # a person, in another pose
    assert "pose accuracy ceiling" in tn_eval.format_table(result) and "pck" in tn_eval.format_table(result)
    shifted = tn_eval.evaluate(OraclePipe(data, shift=5), data, lpips=False, progress=False, pose_detector=detector)
    assert shifted["metrics"]["pck"] == 0.0  # shifted frames are not the dataset's: the detector finds nobody
    with pytest.raises(ValueError, match="keypoints for every frame"):
        pose_accuracy([np.zeros((4, 4, 3), np.uint8)], np.zeros((2, 17, 3)), detector)
