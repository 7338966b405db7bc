"""The main denoiser: diffusers' ``UNetMotionModel`` with per-frame timesteps and pose features.

Two additions over ``UNetMotionModel.forward``, both needed by turbonext:

* ``timestep`` may be a scalar, one per video (B,), or one per frame (B, F). Per-frame timesteps let
  a streaming window hold frames at staggered noise levels and still advance all of them in ONE call.
* ``pose_features`` (B*F, 320, h, w), from :class:`~turbonext.models.pose_guider.PoseGuider`, are
  added to the hidden states right after ``conv_in``.

Everything else (blocks, weights, config, LoRA and attention-processor support) is diffusers' own;
only the top-level forward is rewritten, for the SD1.5/SD2.1 configuration and SDXL's: SDXL's added
conditioning (``addition_embed_type="text_time"``: ``added_cond_kwargs={"text_embeds": pooled text (B, P),
"time_ids": (B, 6)}``, diffusers' convention) is embedded per video and added to every frame's time
embedding; other addition embeddings and the IP-Adapter image projection raise instead of being ignored.
:meth:`TurboNextUNetMotionModel.from_unet2d` also copies the 2D UNet's ``add_embedding`` (diffusers' own
leaves it randomly initialised).
``timestep_cond`` (the guidance-scale embedding of LCM-distilled UNets, ``time_cond_proj_dim``) is
supported, per video or per frame. ``cross_attention_kwargs`` reach the attention processors of every
spatial transformer block (down, mid and up; not the motion modules), as in diffusers, and its
``"scale"`` entry scales PEFT LoRA layers for the call.

Frames are laid out b-major everywhere: frame f of video b is row ``b*F + f`` of every (B*F, ...)
tensor (embeddings, hidden states, ``encoder_hidden_states``, ``pose_features``).
"""

from __future__ import annotations

import contextlib
import inspect

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D, UNetMotionModel, UNetMotionOutput
from diffusers.utils import apply_lora_scale


__all__ = ["TurboNextUNetMotionModel", "ModelMixin", "ConfigMixin", "STREAM_SCHEDULES", "MOTION_NORMS", "PerFrameGroupNorm"]

STREAM_SCHEDULES = ("uniform", "staggered")  # how a live stream may lay out this model's window (config.stream_schedule)
MOTION_NORMS = ("joint", "per_frame")  # how the motion modules' GroupNorm pools statistics (config.motion_norm)


class PerFrameGroupNorm(torch.nn.GroupNorm):
    """GroupNorm whose statistics are taken per frame on (B, C, F, H, W) input, as the original AnimateDiff
    motion module (and the AnimateAnyone family trained on it) computes them; diffusers' motion modules pool
    them over all frames. Same parameters (``weight``, ``bias``) as the GroupNorm it replaces."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        y = super().forward(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


class TurboNextUNetMotionModel(UNetMotionModel):
    """``UNetMotionModel`` whose forward takes per-frame timesteps and additive pose features.

    ``motion_norm``: "joint" (diffusers' motion modules: GroupNorm statistics over all frames of a window) or
    "per_frame" (the original AnimateDiff code's, which the AnimateAnyone family was trained with; converted
    checkpoints of that family set it so they compute what they were trained to compute).

    Another config entry beyond ``UNetMotionModel``'s: ``stream_schedule``, what the model was trained for and
    therefore how :class:`~turbonext.streaming.StreamSession` lays out its window by default. "uniform" (the
    default: models trained with one noise level per clip, converted public checkpoints): every frame being
    denoised shares a level, finished frames serve as context. "staggered": the window holds frames at
    stepped noise levels (cheaper per frame), only for models trained on that layout (``stream_layout`` in
    ``training/``).
    """

    def __init__(self, *args, stream_schedule: str = "uniform", motion_norm: str = "joint", **kwargs):
        if stream_schedule not in STREAM_SCHEDULES:
            raise ValueError(f"stream_schedule must be one of {STREAM_SCHEDULES}, got {stream_schedule!r}.")
        if motion_norm not in MOTION_NORMS:
            raise ValueError(f"motion_norm must be one of {MOTION_NORMS}, got {motion_norm!r}.")
        super().__init__(*args, **kwargs)  # UNetMotionModel's own @register_to_config records its arguments
        self.register_to_config(stream_schedule=stream_schedule, motion_norm=motion_norm)
        if motion_norm == "per_frame":
            self._per_frame_motion_norms()

    @classmethod
    def from_unet2d(cls, unet, motion_adapter=None, load_weights: bool = True):
        """``UNetMotionModel.from_unet2d``, plus the weights of SDXL's added embedding (``add_embedding``), which
        diffusers' version does not copy (it stays randomly initialised there)."""
        model = super().from_unet2d(unet, motion_adapter, load_weights=load_weights)
        if load_weights and getattr(unet, "add_embedding", None) is not None and hasattr(model, "add_embedding"):
            model.add_embedding.load_state_dict(unet.add_embedding.state_dict())
        return model

    @contextlib.contextmanager
    def motion_modules_bypassed(self):
        """Inside this context every motion module passes its input through unchanged: a single image is
        denoised by the spatial layers alone (the single-image pose-transfer path; a model trained on clips
        renders a slightly different picture this way, in less time)."""
        modules = [m for m in self.modules() if isinstance(m, AnimateDiffTransformer3D)]
        for module in modules:
            module.forward = _pass_through
        try:
            yield self
        finally:
            for module in modules:
                del module.forward

    def _per_frame_motion_norms(self) -> None:
        """Swap every motion module's input GroupNorm for :class:`PerFrameGroupNorm` (weights kept)."""
        for name, module in list(self.named_modules()):
            if "motion_modules" in name and type(module) is torch.nn.GroupNorm:
                parent, _, attr = name.rpartition(".")
                norm = PerFrameGroupNorm(module.num_groups, module.num_channels, module.eps, module.affine)
                norm.load_state_dict(module.state_dict())
                setattr(self.get_submodule(parent), attr, norm.to(module.weight.device, module.weight.dtype))

    def _frame_timesteps(self, timestep, batch: int, num_frames: int, device) -> torch.Tensor:
        """Timesteps per frame, shape (B, F), from a scalar, (B,) or (B, F); a leading 1 broadcasts."""
        t = timestep if torch.is_tensor(timestep) else torch.tensor(timestep, device=device)
        t, shape = t.to(device), tuple(t.shape)
        if t.ndim == 0:
            t = t.reshape(1, 1)
        elif t.ndim == 1:
            t = t[:, None]  # one per video
        if t.ndim != 2 or t.shape[0] not in (1, batch) or t.shape[1] not in (1, num_frames):
            raise ValueError(
                f"timestep must be a scalar, (B,)=({batch},) or (B, F)=({batch}, {num_frames}); "
                f"got {shape}"
            )
        return t.expand(batch, num_frames)

    def _frame_timestep_cond(self, timestep_cond: torch.Tensor, batch: int, num_frames: int) -> torch.Tensor:
        """``timestep_cond`` per frame, shape (B*F, D): a (B, D) one is repeated for the frames of each video."""
        cond_proj = self.time_embedding.cond_proj
        if cond_proj is None:
            raise ValueError(
                "timestep_cond was passed but this UNet has no time_cond_proj_dim (no guidance-scale embedding)"
            )
        dim = cond_proj.in_features
        rows = timestep_cond.shape[0] if timestep_cond.ndim == 2 else None
        if timestep_cond.ndim != 2 or timestep_cond.shape[1] != dim or rows not in (batch, batch * num_frames):
            raise ValueError(
                f"timestep_cond must be (B, D)=({batch}, {dim}) or (B*F, D)=({batch * num_frames}, {dim}); "
                f"got {tuple(timestep_cond.shape)}"
            )
        if rows == batch * num_frames:
            return timestep_cond
        return timestep_cond.repeat_interleave(num_frames, dim=0)  # (B, D) -> (B*F, D), row b*F + f

    def _frame_embeddings(self, timestep, batch: int, num_frames: int, device, timestep_cond=None) -> torch.Tensor:
        """Time embedding per frame, shape (B*F, D); row b*F + f embeds frame f of video b."""
        t = self._frame_timesteps(timestep, batch, num_frames, device)  # (B, F)
        t_emb = self.time_proj(t.reshape(-1)).to(dtype=self.dtype)  # (B*F, 320), always computed in fp32
        if timestep_cond is not None:
            timestep_cond = self._frame_timestep_cond(timestep_cond, batch, num_frames).to(t_emb.device, t_emb.dtype)
        return self.time_embedding(t_emb, timestep_cond)  # (B*F, 1280)

    def _text_time_embedding(self, added_cond_kwargs: dict | None, batch: int, num_frames: int,
                             dtype: torch.dtype) -> torch.Tensor:
        """SDXL's added embedding per frame, shape (B*F, D), from ``text_embeds`` (B, P) and ``time_ids`` (B, 6) (one
        row per video, as diffusers' UNets take them; or one per frame, (B*F, ...))."""
        missing = [k for k in ("text_embeds", "time_ids") if k not in (added_cond_kwargs or {})]
        if missing:
            raise ValueError(
                f"this UNet has SDXL's added conditioning (addition_embed_type='text_time'): pass added_cond_kwargs="
                f"{{'text_embeds': pooled text (B, P), 'time_ids': (B, 6)}} (missing {missing}); "
                "TurboNextPipeline fills them in from the prompt and the output size."
            )
        text_embeds, time_ids = added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]
        rows = text_embeds.shape[0]
        expected = self.add_embedding.linear_1.in_features
        width = text_embeds.shape[-1] + time_ids.shape[-1] * self.config.addition_time_embed_dim
        if text_embeds.ndim != 2 or time_ids.ndim != 2 or time_ids.shape[0] != rows or rows not in (
                batch, batch * num_frames) or width != expected:
            raise ValueError(
                f"added_cond_kwargs: text_embeds (B, P) and time_ids (B, T) with B = {batch} (or {batch * num_frames}, "
                f"one per frame) and P + T x {self.config.addition_time_embed_dim} = {expected}; got text_embeds "
                f"{tuple(text_embeds.shape)}, time_ids {tuple(time_ids.shape)}."
            )
        time_embeds = self.add_time_proj(time_ids.flatten()).reshape(rows, -1)  # (rows, T*256), fp32
        aug = self.add_embedding(torch.cat([text_embeds, time_embeds.to(text_embeds.dtype)], dim=-1).to(dtype))
        return aug if rows == batch * num_frames else aug.repeat_interleave(num_frames, dim=0)  # (B*F, D)

    @apply_lora_scale("cross_attention_kwargs")  # as diffusers: pops "scale" and scales PEFT LoRA layers by it
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
        """sample (B, C, F, H, W); timestep scalar, (B,) or (B, F); encoder_hidden_states (B*F, L, D);
        timestep_cond (B, D') or (B*F, D'); pose_features (B*F, 320, H, W); SDXL: added_cond_kwargs
        {"text_embeds": (B, P), "time_ids": (B, 6)}. Returns (B, C, F, H, W)."""
        text_time = self.config.addition_embed_type == "text_time"
        if (self.config.addition_embed_type is not None and not text_time) or getattr(
                self, "encoder_hid_proj", None) is not None:
            raise NotImplementedError(
                "TurboNextUNetMotionModel supports the SD1.5/SD2.1 configuration and SDXL's added conditioning "
                f"(addition_embed_type='text_time') only, not addition_embed_type={self.config.addition_embed_type!r} "
                "nor an IP-Adapter image projection"
            )
        if added_cond_kwargs and not text_time:
            raise ValueError(
                f"added_cond_kwargs ({sorted(added_cond_kwargs)}) are not supported: this UNet has no addition "
                "embedding to feed them to (SD1.5/SD2.1 configuration; SDXL's has addition_embed_type='text_time')"
            )
        batch, _, num_frames, height, width = sample.shape
        up_factor = 2**self.num_upsamplers
        upsample_size = None
        forward_upsample_size = height % up_factor != 0 or width % up_factor != 0
        if attention_mask is not None:
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)  # mask -> bias

        # 1. time: one embedding per frame
        emb = self._frame_embeddings(timestep, batch, num_frames, sample.device, timestep_cond)  # (B*F, D)
        if text_time:  # SDXL: + the pooled text and size/crop time ids, per video
            emb = emb + self._text_time_embedding(added_cond_kwargs, batch, num_frames, emb.dtype)

        # 2. pre-process: (B, C, F, H, W) -> (B*F, C, H, W), conv_in, + pose features
        sample = sample.permute(0, 2, 1, 3, 4).reshape(batch * num_frames, -1, height, width)
        sample = self.conv_in(sample)  # (B*F, 320, H, W)
        if pose_features is not None:
            if pose_features.shape != sample.shape:
                raise ValueError(
                    f"pose_features must have shape {tuple(sample.shape)} (B*F, C, H, W); got {tuple(pose_features.shape)}"
                )
            sample = sample + pose_features.to(sample.dtype)

        # 3. down; blocks with spatial transformers also get the text, the mask and cross_attention_kwargs
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

        # 4. mid (with motion modules only if the adapter has a motion mid block)
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

        # 5. up; when H or W is not a multiple of up_factor, each upsampler is told its output size
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


def _pass_through(hidden_states, *args, **kwargs):
    return hidden_states


def _with_own_config(init, parent_init):
    """Give ``init`` the parent's signature plus ``stream_schedule`` and ``motion_norm``: diffusers'
    ``from_config`` passes a saved config entry to ``__init__`` only when the signature names it."""
    signature = inspect.signature(parent_init)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params.append(inspect.Parameter("stream_schedule", inspect.Parameter.KEYWORD_ONLY, default="uniform",
                                    annotation=str))
    params.append(inspect.Parameter("motion_norm", inspect.Parameter.KEYWORD_ONLY, default="joint", annotation=str))
    init.__signature__ = signature.replace(parameters=params)
    return init


_with_own_config(TurboNextUNetMotionModel.__init__, UNetMotionModel.__init__)
