"""PoseGuider: a ControlNeXt-style strided-conv encoder from a pose image to UNet features.

The output is added to the main UNet's hidden states right after ``conv_in`` (320 channels at
1/8 resolution for SD1.5). The last layer is a zero-initialised convolution, so an untrained
guider changes nothing.

With ``reference_features=True`` the guider also encodes the REFERENCE image's pose, through the
same encoder and its own zero-initialised output convolution (``reference_zero_conv``); those
features are added after the ReferenceNet's ``conv_in``. The reference tokens and the target tokens
then carry the same body-part code, so reference attention can match "left forearm" to "left
forearm" by pose rather than infer body parts from the reference's pixels alone (UniAnimate feeds
the reference pose for the same reason). Zero-initialised: switching it on changes nothing until trained.

``layout="animate_anyone"`` builds the pose guider of the AnimateAnyone family (Moore-AnimateAnyone, MusePose,
RAIN) instead, so their checkpoints load key for key: a 3x3 ``conv_in`` to ``block_out_channels[0]``, then per
level a 3x3 conv and a 3x3 stride-2 conv to the next width (``blocks``), SiLU after every conv, and a
zero-initialised 3x3 ``conv_out`` to ``out_channels``; with 4 widths (16, 32, 96, 256) that is 3 halvings, 1/8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn


__all__ = ["PoseGuider", "ModelMixin", "ConfigMixin", "POSE_GUIDER_LAYOUTS"]

POSE_GUIDER_LAYOUTS = ("turbonext", "animate_anyone")  # PoseGuider(layout=...): ours, or the AnimateAnyone family's


class PoseGuider(ModelMixin, ConfigMixin):
    """Pose image (N, 3, H, W) in [0, 1] -> features (N, C, H/8, W/8) to add after ``conv_in``.

    Layers (defaults): Conv2d(3,32,k4,s2,p1) SiLU Conv2d(32,64,k4,s2,p1) SiLU
    Conv2d(64,128,k4,s2,p1) SiLU Conv2d(128,320,k3,s1,p1), then a zero-initialised
    Conv2d(320,320,k1) (``zero_conv``); with ``reference_features``, a second zero-initialised
    Conv2d(320,320,k1) (``reference_zero_conv``) for :meth:`encode_reference`.
    """

    @register_to_config
    def __init__(
        self,
        conditioning_channels: int = 3,
        block_out_channels: tuple[int, ...] = (32, 64, 128),
        out_channels: int = 320,
        reference_features: bool = False,
        layout: str = "turbonext",
    ):
        super().__init__()
        if layout not in POSE_GUIDER_LAYOUTS:
            raise ValueError(f"layout must be one of {POSE_GUIDER_LAYOUTS}, got {layout!r}.")
        if layout == "animate_anyone":
            if reference_features:
                raise ValueError("the animate_anyone pose guider layout has no reference branch "
                                 "(reference_features=True is a turbonext-layout option).")
            self._build_animate_anyone(conditioning_channels, tuple(block_out_channels), out_channels)
            return
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
        if reference_features:
            self.reference_zero_conv = nn.Conv2d(out_channels, out_channels, kernel_size=1)
            nn.init.zeros_(self.reference_zero_conv.weight)
            nn.init.zeros_(self.reference_zero_conv.bias)

    def _build_animate_anyone(self, conditioning_channels: int, widths: tuple[int, ...], out_channels: int) -> None:
        self.conv_in = nn.Conv2d(conditioning_channels, widths[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for width, next_width in zip(widths[:-1], widths[1:]):  # each level: keep, then halve H and W
            self.blocks.append(nn.Conv2d(width, width, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(width, next_width, kernel_size=3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(widths[-1], out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def downscale_factor(self) -> int:
        if self.config.layout == "animate_anyone":
            return 2 ** (len(self.config.block_out_channels) - 1)
        return 2 ** len(self.config.block_out_channels)

    @property
    def reads_reference_pose(self) -> bool:
        """Whether the model this guider belongs to needs the reference image's pose."""
        return bool(self.config.reference_features)

    def _check(self, pose: torch.Tensor) -> None:
        if pose.ndim != 4 or pose.shape[1] != self.config.conditioning_channels:
            raise ValueError(
                f"PoseGuider expects pose images of shape (N, {self.config.conditioning_channels}, H, W), "
                f"got {tuple(pose.shape)}."
            )

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        self._check(pose)
        if self.config.layout == "animate_anyone":
            x = F.silu(self.conv_in(pose))
            for conv in self.blocks:
                x = F.silu(conv(x))
            return self.conv_out(x)  # (N, out_channels, H/8, W/8)
        return self.zero_conv(self.encoder(pose))  # (N, out_channels, H/8, W/8)

    @apply_forward_hook  # under model CPU offload, moves the guider to the accelerator like forward() does
    def encode_reference(self, pose: torch.Tensor) -> torch.Tensor:
        """The reference image's pose (N, 3, H, W) -> features (N, C, H/8, W/8) for the ReferenceNet's ``conv_in``."""
        if not self.config.reference_features:
            raise ValueError("this PoseGuider was built without reference_features=True; it has no reference branch.")
        self._check(pose)
        return self.reference_zero_conv(self.encoder(pose))

    @classmethod
    def with_reference_features(cls, guider: "PoseGuider") -> "PoseGuider":
        """A copy of ``guider`` with a (zero-initialised) reference branch; the rest of its weights kept."""
        return guider if guider.config.reference_features else cls._copy(guider, True)

    @classmethod
    def without_reference_features(cls, guider: "PoseGuider") -> "PoseGuider":
        """A copy of ``guider`` without its reference branch (same as that branch set to zero)."""
        return cls._copy(guider, False) if guider.config.reference_features else guider

    @classmethod
    def _copy(cls, guider: "PoseGuider", reference_features: bool) -> "PoseGuider":
        config = {k: v for k, v in guider.config.items() if not k.startswith("_")}
        new = cls(**{**config, "reference_features": reference_features})
        missing, unexpected = new.load_state_dict(guider.state_dict(), strict=False)
        extra = missing + unexpected
        assert all(k.startswith("reference_zero_conv.") for k in extra), extra
        new = new.to(guider.device)
        return new if guider.dtype == torch.float32 else new.to(guider.dtype)
