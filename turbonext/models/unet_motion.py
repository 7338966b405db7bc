"""The main denoiser: diffusers' ``UNetMotionModel`` with per-frame timesteps and pose features.

Two additions over ``UNetMotionModel.forward``, both needed by turbonext:

* ``timestep`` may be a scalar, one per video (B,), or one per frame (B, F). Per-frame timesteps let
  a streaming window hold frames at staggered noise levels and still advance all of them in ONE call.
* ``pose_features`` (B*F, 320, h, w), from :class:`~turbonext.models.pose_guider.PoseGuider`, are
  added to the hidden states right after ``conv_in``.

Everything else (blocks, weights, config, LoRA and attention-processor support) is diffusers' own;
only the top-level forward is rewritten, for the SD1.5 configuration (no class/addition embeddings).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_motion_model import UNetMotionModel, UNetMotionOutput


__all__ = ["TurboNextUNetMotionModel", "ModelMixin", "ConfigMixin"]


class TurboNextUNetMotionModel(UNetMotionModel):
    """``UNetMotionModel`` whose forward takes per-frame timesteps and additive pose features."""

    def _frame_embeddings(self, timestep, batch: int, num_frames: int, device, timestep_cond=None) -> torch.Tensor:
        """Time embedding per frame, shape (B*F, D)."""
        t = timestep if torch.is_tensor(timestep) else torch.tensor(timestep, device=device)
        t = t.to(device)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.ndim == 1:
            if t.shape[0] != batch:
                raise ValueError(f"timestep of shape {tuple(t.shape)} does not match batch {batch}")
            t = t[:, None].expand(batch, num_frames)
        if t.shape != (batch, num_frames):
            raise ValueError(f"timestep must be a scalar, (B,) or (B, F)=({batch}, {num_frames}); got {tuple(t.shape)}")
        t_emb = self.time_proj(t.reshape(-1)).to(dtype=self.dtype)  # (B*F, 320)
        return self.time_embedding(t_emb, timestep_cond)  # (B*F, 1280)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        timestep_cond: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        added_cond_kwargs: dict | None = None,
        down_block_additional_residuals: tuple[torch.Tensor, ...] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        pose_features: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNetMotionOutput | tuple[torch.Tensor]:
        """sample (B, C, F, H, W); encoder_hidden_states (B*F, L, D); returns (B, C, F, H, W)."""
        if self.config.addition_embed_type is not None:
            raise NotImplementedError("TurboNextUNetMotionModel supports the SD1.5 configuration only")
        batch, _, num_frames, height, width = sample.shape
        up_factor = 2**self.num_upsamplers
        upsample_size = None
        forward_upsample_size = height % up_factor != 0 or width % up_factor != 0
        if attention_mask is not None:
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)

        # 1. time: one embedding per frame
        emb = self._frame_embeddings(timestep, batch, num_frames, sample.device, timestep_cond)  # (B*F, D)

        # 2. pre-process: (B, C, F, H, W) -> (B*F, C, H, W), conv_in, + pose features
        sample = sample.permute(0, 2, 1, 3, 4).reshape(batch * num_frames, -1, height, width)
        sample = self.conv_in(sample)  # (B*F, 320, H, W)
        if pose_features is not None:
            if pose_features.shape != sample.shape:
                raise ValueError(
                    f"pose_features must have shape {tuple(sample.shape)} (B*F, C, H, W); got {tuple(pose_features.shape)}"
                )
            sample = sample + pose_features.to(sample.dtype)

        # 3. down
        down_block_res_samples = (sample,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                sample, res = block(
                    hidden_states=sample,
                    temb=emb,
                    encoder_hidden_states=encoder_hidden_states,
                    attention_mask=attention_mask,
                    num_frames=num_frames,
                    cross_attention_kwargs=cross_attention_kwargs,
                )
            else:
                sample, res = block(hidden_states=sample, temb=emb, num_frames=num_frames)
            down_block_res_samples += res
        if down_block_additional_residuals is not None:
            down_block_res_samples = tuple(
                s + r for s, r in zip(down_block_res_samples, down_block_additional_residuals)
            )

        # 4. mid
        if self.mid_block is not None:
            mid_kwargs = dict(
                encoder_hidden_states=encoder_hidden_states,
                attention_mask=attention_mask,
                cross_attention_kwargs=cross_attention_kwargs,
            )
            if hasattr(self.mid_block, "motion_modules"):
                mid_kwargs["num_frames"] = num_frames
            sample = self.mid_block(sample, emb, **mid_kwargs)
        if mid_block_additional_residual is not None:
            sample = sample + mid_block_additional_residual

        # 5. up
        for i, block in enumerate(self.up_blocks):
            res = down_block_res_samples[-len(block.resnets) :]
            down_block_res_samples = down_block_res_samples[: -len(block.resnets)]
            if i < len(self.up_blocks) - 1 and forward_upsample_size:
                upsample_size = down_block_res_samples[-1].shape[2:]
            if getattr(block, "has_cross_attention", False):
                sample = block(
                    hidden_states=sample,
                    temb=emb,
                    res_hidden_states_tuple=res,
                    encoder_hidden_states=encoder_hidden_states,
                    upsample_size=upsample_size,
                    attention_mask=attention_mask,
                    num_frames=num_frames,
                    cross_attention_kwargs=cross_attention_kwargs,
                )
            else:
                sample = block(
                    hidden_states=sample,
                    temb=emb,
                    res_hidden_states_tuple=res,
                    upsample_size=upsample_size,
                    num_frames=num_frames,
                )

        # 6. post-process, back to (B, C, F, H, W)
        if self.conv_norm_out:
            sample = self.conv_act(self.conv_norm_out(sample))
        sample = self.conv_out(sample)
        sample = sample.reshape(batch, num_frames, *sample.shape[1:]).permute(0, 2, 1, 3, 4)
        if not return_dict:
            return (sample,)
        return UNetMotionOutput(sample=sample)
