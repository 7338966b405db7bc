"""A pipeline loaded ready to render on the best device (the app, ``turbonext generate``, benchmarks)."""

from __future__ import annotations

import os

import torch

from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.utils.devices import default_device


def load_for_inference(name_or_path: str | os.PathLike, device: str | None = None, **kwargs):
    """``TurboNextPipeline.from_pretrained(name_or_path)`` on ``device`` (default :func:`default_device`),
    in fp16 on an accelerator and fp32 on a CPU, ready to render.

    On a CPU the decoder VAE is also stored in ``channels_last`` memory format: oneDNN's convolutions
    then decode a 4-frame burst of the demo model about a third faster (298 -> 196 ms, stream FPS 4.65 ->
    5.68; ``turbonext bench stream --model turbonext-demo --channels-last``, BENCHMARKS.md). Output
    changes by less than one 8-bit level. GPUs keep the default format (not measured there).
    ``kwargs`` go to ``from_pretrained``.
    """
    device = device or default_device()
    on_cpu = torch.device(device).type == "cpu"
    kwargs.setdefault("torch_dtype", torch.float32 if on_cpu else torch.float16)
    pipe = TurboNextPipeline.from_pretrained(name_or_path, **kwargs).to(device)
    if on_cpu:
        pipe.vae.to(memory_format=torch.channels_last)
    return pipe
