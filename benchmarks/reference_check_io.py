"""What the reference checks (``reference_hue_check.py``, ``reference_x0_follow.py``, ``reference_path_probe.py``)
share: reading a scene's frames and writing their JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def load_frames(paths) -> torch.Tensor:
    """Image files -> (N, 3, H, W) float in [0, 1]."""
    arrays = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0 for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def write_json(path: str | Path | None, result: dict) -> None:
    """Write ``result`` to ``path`` (folders made as needed); nothing when ``path`` is None."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1))
