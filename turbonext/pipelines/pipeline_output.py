"""What :class:`~turbonext.TurboNextPipeline` returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput


@dataclass
class TurboNextPipelineOutput(BaseOutput):
    """``frames``: batched like diffusers' video pipelines, ``frames[0]`` is the clip: a list holding one list
    of PIL images ("pil"), an array (1, F, H, W, 3) in [0, 1] ("np"), a tensor (1, F, 3, H, W) in [0, 1] ("pt"),
    or the latents (1, 4, F, h, w) ("latent"). ``reference_image``: the reference the call generated from its
    prompt (a text-made identity), else None."""

    frames: list[list[PIL.Image.Image]] | np.ndarray | torch.Tensor
    reference_image: PIL.Image.Image | None = None
