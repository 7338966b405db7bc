"""Following people from frame to frame: box overlap, track assignment, and the "main person".

Used by the One-Euro smoother (one filter per track) and by data preparation (one person per
scene: the largest at the start, then whoever overlaps them most in each following frame).
"""

from __future__ import annotations

from typing import Sequence

from turbonext.pose.keypoints import BBox, Person


def box_iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 for empty boxes."""
    ix0, iy0 = max(a[0], b[0]), max(a[1], b[1])
    ix1, iy1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def match_boxes(previous: Sequence[BBox | None], current: Sequence[BBox | None], min_iou: float = 0.1) -> dict[int, int]:
    """Greedy one-to-one matching by IoU: returns {current index: previous index}."""
    pairs = []
    for i, cur in enumerate(current):
        for j, prev in enumerate(previous):
            if cur is None or prev is None:
                continue
            iou = box_iou(cur, prev)
            if iou >= min_iou:
                pairs.append((iou, i, j))
    pairs.sort(reverse=True)
    matched: dict[int, int] = {}
    used_prev: set[int] = set()
    for _, i, j in pairs:
        if i not in matched and j not in used_prev:
            matched[i] = j
            used_prev.add(j)
    return matched


class MainPersonTracker:
    """Pick one person per frame and keep following them.

    The first frame (or the first after :meth:`reset`, or after the person was lost for
    ``max_missed`` frames) takes the largest person; later frames take the person whose box
    overlaps the previous pick most (at least ``min_iou``), else the largest one.
    """

    def __init__(self, min_iou: float = 0.1, max_missed: int = 5, threshold: float = 0.3) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        """Forget the followed person (call at every scene cut)."""
        self._last_box: BBox | None = None
        self._missed = 0

    def __call__(self, people: Sequence[Person]) -> Person | None:
        """The main person among ``people`` (None when the list holds nobody with a box)."""
        candidates = [p for p in people if p.box(self.threshold) is not None]
        if not candidates:
            self._missed += 1
            if self._missed > self.max_missed:
                self._last_box = None
            return None
        choice = None
        if self._last_box is not None:
            best = max(candidates, key=lambda p: box_iou(p.box(self.threshold), self._last_box))  # type: ignore[arg-type]
            if box_iou(best.box(self.threshold), self._last_box) >= self.min_iou:  # type: ignore[arg-type]
                choice = best
        if choice is None:
            choice = max(candidates, key=lambda p: p.area(self.threshold))
        self._last_box = choice.box(self.threshold)
        self._missed = 0
        return choice
