"""Which device to run on."""

from __future__ import annotations


def default_device() -> str:
    """The type of torch's current accelerator (a GPU) when one is available, else "cpu"."""
    import torch

    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    return accelerator.type if accelerator is not None else "cpu"
