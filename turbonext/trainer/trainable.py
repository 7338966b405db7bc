"""Which parameters train, and the training model built from the config.

Per the design: the pose guider and the main UNet's reference-reading spatial self-attentions
(``attn1``, not the motion modules' temporal ones) always train; the ReferenceNet and the motion
modules optionally; everything else (UNet ResNets and cross-attention, VAE, text encoder) is frozen.
"""

from __future__ import annotations

import torch
from torch import nn

from turbonext.models.pose_guider import PoseGuider
from turbonext.models.reference_attention import spatial_self_attention_names
from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
from turbonext.trainer.config import TrainConfig


def build_pipeline(cfg: TrainConfig, torch_dtype: torch.dtype | None = None) -> TurboNextPipeline:
    """The model to train, from the config's component repos/folders; no LCM-LoRA (trained without it)."""
    pipe = TurboNextPipeline.from_components(
        base=cfg.base, motion_adapter=cfg.motion_adapter, tiny_vae=cfg.tiny_vae, lcm_lora=None,
        pose_guider=cfg.pose_guider, reference_unet=cfg.reference_unet, encode_with_sd_vae=cfg.encode_with_sd_vae,
        revision=cfg.revision, torch_dtype=torch_dtype,
    )
    if cfg.reference_pose and not pipe.pose_guider.reads_reference_pose:
        pipe.register_modules(pose_guider=PoseGuider.with_reference_features(pipe.pose_guider))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def is_trainable_unet_param(name: str, train_motion_modules: bool, attn_names: set[str]) -> bool:
    """Whether the main-UNet parameter ``name`` trains: spatial ``attn1`` always, motion modules optionally."""
    if train_motion_modules and "motion_modules." in name:
        return True
    return any(name.startswith(prefix + ".") for prefix in attn_names)


def configure_trainable(pipe: TurboNextPipeline, train_reference_unet: bool = False,
                        train_motion_modules: bool = False, train_full_unet: bool = False) -> list[nn.Parameter]:
    """Set ``requires_grad`` on every component; returns the trainable parameters.

    ``train_full_unet`` unfreezes the whole main UNet: only for tiny models trained from scratch
    (the synthetic demo), whose random ResNets would otherwise never learn.
    """
    for module in (pipe.vae, pipe.encoder_vae, pipe.text_encoder, pipe.unet, pipe.reference_unet):
        if module is not None:
            module.requires_grad_(False)
    pipe.pose_guider.requires_grad_(True)
    pipe.reference_unet.requires_grad_(train_reference_unet)
    attn_names = set(spatial_self_attention_names(pipe.unet))
    for name, param in pipe.unet.named_parameters():
        param.requires_grad_(train_full_unet or is_trainable_unet_param(name, train_motion_modules, attn_names))
    params = [p for p in pipe.pose_guider.parameters()]
    params += [p for p in pipe.unet.parameters() if p.requires_grad]
    if train_reference_unet:
        params += list(pipe.reference_unet.parameters())
    return params


def trainable_unet_state_dict(unet: nn.Module) -> dict[str, torch.Tensor]:
    """The main UNet's trainable parameters (names as in ``unet.state_dict()``), contiguous CPU copies."""
    return {n: p.detach().to("cpu").contiguous() for n, p in unet.named_parameters() if p.requires_grad}


def load_unet_params(unet: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy a (partial) state dict into the UNet; every key must name one of its parameters."""
    own = dict(unet.named_parameters())
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{len(unknown)} trained UNet parameters do not exist in this UNet (e.g. {unknown[:3]}); "
                         "was the checkpoint trained on another base or motion adapter?")
    with torch.no_grad():
        for name, value in state.items():
            if own[name].shape != value.shape:
                raise ValueError(f"UNet parameter {name}: checkpoint shape {tuple(value.shape)} != model {tuple(own[name].shape)}.")
            own[name].copy_(value.to(own[name].dtype))


def copy_unet_into_reference_net(pipe: TurboNextPipeline) -> int:
    """Overwrite the ReferenceNet with the main UNet's spatial (2D) weights; returns the tensors copied.

    AnimateAnyone's start: a ReferenceNet that is a copy of the denoising UNet writes tokens in the same
    feature space the UNet's self-attention reads, so reference attention can match like with like from
    the first step. Useful when the two were trained apart (a from-scratch model whose ReferenceNet never
    learned its job). Raises ``ValueError`` when the two do not share the spatial architecture.
    """
    spatial = {k: v for k, v in pipe.unet.state_dict().items() if "motion_modules." not in k}
    own = pipe.reference_unet.state_dict()
    missing, extra = sorted(set(own) - set(spatial)), sorted(set(spatial) - set(own))
    mismatched = [k for k in set(own) & set(spatial) if own[k].shape != spatial[k].shape]
    if missing or extra or mismatched:
        raise ValueError(f"the ReferenceNet and the main UNet differ ({len(missing)} weights only in the ReferenceNet, "
                         f"{len(extra)} only in the UNet, {len(mismatched)} of other shapes, e.g. "
                         f"{(missing + extra + mismatched)[:3]}): they must share the spatial architecture.")
    pipe.reference_unet.load_state_dict(spatial)
    return len(spatial)


def count_parameters(params: list[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)
