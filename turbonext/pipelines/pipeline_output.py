"""What :class:`~turbonext.TurboNextPipeline` returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput


@dataclass
class TurboNextPipelineOutput(BaseOutput):
    """``frames``: one clip, a list of PIL images ("pil"), an array (F, H, W, 3) in [0, 1] ("np"),
    a tensor (F, 3, H, W) in [0, 1] ("pt") or latents (1, 4, F, h, w) ("latent")."""

    frames: list[PIL.Image.Image] | np.ndarray | torch.Tensor
