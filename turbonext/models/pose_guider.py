"""PoseGuider: a ControlNeXt-style strided-conv encoder from a pose image to UNet features.

The output is added to the main UNet's hidden states right after ``conv_in`` (320 channels at
1/8 resolution for SD1.5). The last layer is a zero-initialised convolution, so an untrained
guider changes nothing.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

__all__ = ["PoseGuider", "ModelMixin", "ConfigMixin"]


class PoseGuider(ModelMixin, ConfigMixin):
    """Pose image (N, 3, H, W) in [0, 1] -> features (N, C, H/8, W/8) to add after ``conv_in``.

    Layers (defaults): Conv2d(3,32,k4,s2,p1) SiLU Conv2d(32,64,k4,s2,p1) SiLU
    Conv2d(64,128,k4,s2,p1) SiLU Conv2d(128,320,k3,s1,p1), then a zero-initialised
    Conv2d(320,320,k1) (``zero_conv``).
    """

    @register_to_config
    def __init__(
        self,
        conditioning_channels: int = 3,
        block_out_channels: tuple[int, ...] = (32, 64, 128),
        out_channels: int = 320,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = conditioning_channels
        for ch in block_out_channels:  # each halves H and W: 3 of them give 1/8
            layers += [nn.Conv2d(in_ch, ch, kernel_size=4, stride=2, padding=1), nn.SiLU()]
            in_ch = ch
        layers.append(nn.Conv2d(in_ch, out_channels, kernel_size=3, stride=1, padding=1))
        self.encoder = nn.Sequential(*layers)
        self.zero_conv = nn.Conv2d(out_channels, out_channels, kernel_size=1)
        nn.init.zeros_(self.zero_conv.weight)
        nn.init.zeros_(self.zero_conv.bias)

    @property
    def downscale_factor(self) -> int:
        return 2 ** len(self.config.block_out_channels)

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        if pose.ndim != 4 or pose.shape[1] != self.config.conditioning_channels:
            raise ValueError(
                f"PoseGuider expects pose images of shape (N, {self.config.conditioning_channels}, H, W), "
                f"got {tuple(pose.shape)}."
            )
        return self.zero_conv(self.encoder(pose))  # (N, out_channels, H/8, W/8)
