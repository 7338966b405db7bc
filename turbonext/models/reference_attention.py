"""Reference attention: ReferenceNet "writes" its self-attention inputs once, the main UNet "reads" them.

Write: every spatial self-attention (``attn1``) of the ReferenceNet records its input tokens
(the normed hidden states, shape (B_ref, N, C)) into a :class:`ReferenceCache`.
Read: every spatial self-attention of the main UNet attends to ``[its own tokens ; reference tokens]``
(keys and values concatenated on the token axis); all frames share the same reference tokens.
The reference tokens' key/value projections are fixed for a given reference and set of weights, so
:meth:`ReferenceCache.precompute_kv` computes them once and every frame, window and call reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


__all__ = [
    "ReferenceCache",
    "ReferenceState",
    "ReferenceWriteProcessor",
    "ReferenceReadProcessor",
    "spatial_self_attention_names",
    "install_reference_processors",
    "run_reference_net",
]


def spatial_self_attention_names(unet: torch.nn.Module) -> list[str]:
    """Module names of the spatial self-attentions (``...attn1``), excluding motion-module attentions."""
    return [
        name
        for name, module in unet.named_modules()
        if isinstance(module, Attention) and name.endswith("attn1") and "motion_modules" not in name
    ]


@dataclass
class ReferenceCache:
    """What one reference image leaves behind: ReferenceNet tokens and, once precomputed, their K/V.

    ``tokens[name]``: (B_ref, N, C) input of ReferenceNet's self-attention ``name``.
    ``kv[name]``: (key, value), each (B_ref, N, inner_dim), projected by the main UNet's layer ``name``.
    """

    tokens: dict[str, torch.Tensor] = field(default_factory=dict)
    kv: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    key: str | None = None  # identifies the reference (content hash, prompt) for reuse checks

    def to(self, device=None, dtype=None) -> "ReferenceCache":
        self.tokens = {n: t.to(device=device, dtype=dtype) for n, t in self.tokens.items()}
        self.kv = {n: (k.to(device=device, dtype=dtype), v.to(device=device, dtype=dtype)) for n, (k, v) in self.kv.items()}
        return self

    @torch.no_grad()
    def precompute_kv(self, unet: torch.nn.Module) -> None:
        """Project every layer's reference tokens with the main UNet's ``to_k``/``to_v`` once."""
        self.kv = {}
        for name, tokens in self.tokens.items():
            attn = unet.get_submodule(name)
            tokens = tokens.to(device=attn.to_k.weight.device, dtype=attn.to_k.weight.dtype)
            self.kv[name] = (attn.to_k(tokens), attn.to_v(tokens))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensor dict (safetensors-friendly) of the captured tokens."""
        return {f"tokens.{n}": t.contiguous() for n, t in self.tokens.items()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], key: str | None = None) -> "ReferenceCache":
        tokens = {n[len("tokens.") :]: t for n, t in state.items() if n.startswith("tokens.")}
        return cls(tokens=tokens, key=key)


class ReferenceState:
    """Shared switchboard between the pipeline and the attention processors.

    ``mode``: "write" (ReferenceNet records), "read" (main UNet attends to the cache) or "off".
    """

    def __init__(self) -> None:
        self.mode = "off"
        self.cache: ReferenceCache | None = None
        self.enabled = True  # False disables reading (ablation: no reference attention)


class ReferenceWriteProcessor:
    """ReferenceNet self-attention: record the input tokens, then attend as usual."""

    def __init__(self, name: str, state: ReferenceState):
        self.name = name
        self.state = state
        self.inner = AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        if self.state.mode == "write" and self.state.cache is not None:
            self.state.cache.tokens[self.name] = hidden_states  # (B_ref, N, C)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReferenceReadProcessor:
    """Main-UNet spatial self-attention over ``[own tokens ; reference tokens]``."""

    def __init__(self, name: str, state: ReferenceState):
        self.name = name
        self.state = state
        self.inner = AttnProcessor2_0()

    def _reference_kv(self, attn: Attention) -> tuple[torch.Tensor, torch.Tensor] | None:
        cache = self.state.cache
        if self.state.mode != "read" or not self.state.enabled or cache is None:
            return None
        if self.name in cache.kv:
            return cache.kv[self.name]
        tokens = cache.tokens.get(self.name)
        if tokens is None:
            return None
        return attn.to_k(tokens), attn.to_v(tokens)  # trainable path: projections carry gradients

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        ref = self._reference_kv(attn)
        if ref is None or encoder_hidden_states is not None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if attention_mask is not None or attn.group_norm is not None or attn.spatial_norm is not None:
            raise NotImplementedError("reference attention supports plain self-attention layers (SD1.5 attn1)")

        batch, _, _ = hidden_states.shape  # (B*F, N, C)
        k_ref, v_ref = ref  # (B_ref, N_ref, inner)
        if k_ref.shape[0] == 1:
            k_ref, v_ref = k_ref.expand(batch, -1, -1), v_ref.expand(batch, -1, -1)
        elif batch % k_ref.shape[0] == 0:
            repeats = batch // k_ref.shape[0]  # frames of one clip are contiguous: (b, f) -> b*F + f
            k_ref, v_ref = k_ref.repeat_interleave(repeats, 0), v_ref.repeat_interleave(repeats, 0)
        else:
            raise ValueError(f"reference batch {k_ref.shape[0]} does not divide the UNet batch {batch}")

        query = attn.to_q(hidden_states)
        key = torch.cat([attn.to_k(hidden_states), k_ref.to(query.dtype)], dim=1)  # (B*F, N + N_ref, inner)
        value = torch.cat([attn.to_v(hidden_states), v_ref.to(query.dtype)], dim=1)

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def install_reference_processors(unet: torch.nn.Module, state: ReferenceState, role: str) -> list[str]:
    """Put write (``role="write"``) or read (``role="read"``) processors on ``unet``'s spatial self-attentions.

    Other layers keep their processors. Returns the layer names that got one.
    """
    if role not in ("write", "read"):
        raise ValueError(f"role must be 'write' or 'read', got {role!r}")
    cls = ReferenceWriteProcessor if role == "write" else ReferenceReadProcessor
    names = spatial_self_attention_names(unet)
    for name in names:
        unet.get_submodule(name).set_processor(cls(name, state))
    return names


def run_reference_net(reference_unet: torch.nn.Module, state: ReferenceState, latents: torch.Tensor,
                      text: torch.Tensor, pose_features: torch.Tensor | None = None) -> ReferenceCache:
    """ReferenceNet "write" pass: ``state.cache`` becomes a new cache holding every ``attn1`` input.

    ``latents`` (B_ref, 4, h, w); ``text`` (B_ref, 77, D); ``pose_features`` (B_ref, C, h, w), the
    reference pose encoded by :meth:`PoseGuider.encode_reference`, added to the output of the
    ReferenceNet's ``conv_in`` (as the target pose is added after the main UNet's). Leaves
    ``state.mode == "read"``. Gradients flow if enabled by the caller.
    """
    hook = None
    if pose_features is not None:
        def add_pose(module, inputs, output):
            if output.shape != pose_features.shape:
                raise ValueError(f"reference pose features {tuple(pose_features.shape)} do not match the "
                                 f"ReferenceNet's conv_in output {tuple(output.shape)}.")
            return output + pose_features.to(output.dtype)

        hook = reference_unet.conv_in.register_forward_hook(add_pose)
    cache = ReferenceCache()
    state.cache, state.mode = cache, "write"
    try:
        reference_unet(latents, torch.zeros((), device=latents.device), encoder_hidden_states=text, return_dict=False)
    finally:
        state.mode = "read"
        if hook is not None:
            hook.remove()
    return cache
