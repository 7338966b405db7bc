"""The differentiable part of a training step as ONE module, so accelerate/DDP wraps it once.

ReferenceNet ("write") -> pose guider -> main UNet ("read"). Wrapping the three together matters for
multi-GPU: the ReferenceNet's own output is never used (only the tokens it records), so DDP must
see the whole path from the prediction back to its parameters to know which of them get gradients.
The modules are the pipeline's own (shared parameters), so the pipeline always holds the trained weights.
"""

from __future__ import annotations

import torch
from torch import nn

from turbonext.models.reference_attention import run_reference_net
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline


class TrainingModel(nn.Module):
    """``forward(noisy, timesteps, ref_latents, text, poses[, ref_poses]) -> predicted noise (B, 4, F, h, w)``."""

    def __init__(self, pipe: TurboNextPipeline, train_reference_unet: bool = False):
        super().__init__()
        self.unet = pipe.unet
        self.pose_guider = pipe.pose_guider
        self.reference_unet = pipe.reference_unet
        self.train_reference_unet = train_reference_unet

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, ref_latents: torch.Tensor, text: torch.Tensor,
                poses: torch.Tensor, ref_poses: torch.Tensor | None = None,
                ref_key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """noisy (B, 4, F, h, w); timesteps (B,) or (B, F); ref_latents (B, 4, h, w); text (B, 77, D);
        poses (B, F, 3, H, W); ref_poses (B, 3, H, W), the reference's pose, required when the pose
        guider has a reference branch (``reference_features``) and ignored otherwise; ref_key_mask (B, 1, H', W'),
        optional: the reference tokens each sample may read (:attr:`ReferenceCache.key_mask`).

        Each sample b reads its own reference b (frames b*F ... b*F + F - 1). The reference tokens travel
        with the UNet call (``cross_attention_kwargs``), so gradient checkpointing re-reads them in backward
        and nothing outlives the step.
        """
        num_frames = noisy.shape[2]
        # 1. ReferenceNet "write": every attn1 input is recorded. Gradients reach it when it trains, and
        #    always reach the pose guider's reference branch through it.
        ref_dtype = self.reference_unet.dtype
        ref_pose_features = None
        if self.pose_guider.reads_reference_pose:
            if ref_poses is None:
                raise ValueError("this pose guider reads the reference pose: pass ref_poses (B, 3, H, W).")
            ref_pose_features = self.pose_guider.encode_reference(ref_poses).to(ref_dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and (self.train_reference_unet or ref_pose_features is not None)):
            reference = run_reference_net(self.reference_unet, ref_latents.to(ref_dtype), text.to(ref_dtype),
                                          ref_pose_features)
        reference.key_mask = ref_key_mask
        # 2. main UNet "read": cache.kv is empty, so each layer projects the tokens with its own to_k/to_v
        pose_features = self.pose_guider(poses.flatten(0, 1))  # (B*F, 320, h, w)
        return self.unet(noisy, timesteps, encoder_hidden_states=text.repeat_interleave(num_frames, dim=0),
                         pose_features=pose_features, cross_attention_kwargs={"reference": reference},
                         return_dict=False)[0]  # (B, 4, F, h, w)
