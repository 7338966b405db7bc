"""Reference attention: ReferenceNet "writes" its self-attention inputs once, the main UNet "reads" them.

Write: every spatial self-attention (``attn1``) of the ReferenceNet records its input tokens (the
``norm1`` output of its transformer block, shape (B_ref, N, C)) into a :class:`ReferenceCache`.
Read: every spatial self-attention of the main UNet attends to ``[its own tokens ; reference tokens]``
(keys and values concatenated on the token axis); all frames of a clip share its reference tokens.
The reference tokens' key/value projections are fixed for a given reference and set of weights, so
:meth:`ReferenceCache.precompute_kv` computes them once and every frame, window and call reuses them.

The attention processors hold no state: the cache travels with each UNet call, in
``cross_attention_kwargs`` (``{"reference": cache}`` to read, ``{"reference_out": cache}`` to write).
So pipelines that share their UNets (``TurboNextPipeline(**other.components)``, ``from_pipe``) and
streams that share a pipeline each keep their own reference, and nothing else can overwrite it.

:func:`weights_fingerprint` says when cached tokens or K/V went stale: it changes with any weight,
LoRA adapter, adapter scale, enabled/disabled adapter or fused LoRA of the modules it is given.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


__all__ = [
    "NoReferenceError",
    "ReferenceCache",
    "ReferenceState",
    "ReferenceWriteProcessor",
    "ReferenceReadProcessor",
    "PassThroughProcessor",
    "spatial_self_attention_names",
    "install_reference_processors",
    "run_reference_net",
    "weights_fingerprint",
]


class NoReferenceError(ValueError):
    """Raised when something needs the person's reference image and none was set."""

    def __init__(self, how: str = "pass reference_image=... or call pipe.set_reference(image) first."):
        super().__init__(f"no reference set: {how}")


def spatial_self_attention_names(unet: torch.nn.Module) -> list[str]:
    """Module names of the spatial self-attentions (``...attn1``), excluding motion-module attentions."""
    return [
        name
        for name, module in unet.named_modules()
        if isinstance(module, Attention) and name.endswith("attn1") and "motion_modules" not in name
    ]


def weights_fingerprint(*modules: torch.nn.Module | None) -> str:
    """A digest that changes whenever what ``modules`` compute could change: any parameter's values
    (two norms of every tensor, so a fused LoRA or a training step shows), the set of parameters (an
    added or removed adapter), and the state of every peft LoRA layer (active adapters, their scales,
    disabled or merged). Cheap: a few fused reductions per device and one copy to the host."""
    digest = hashlib.sha1()
    for module in modules:
        if module is None:
            continue
        named = list(module.named_parameters())
        digest.update(repr([(n, tuple(p.shape), str(p.dtype)) for n, p in named]).encode())
        groups: dict[tuple, list[torch.Tensor]] = {}  # one fused reduction per device and dtype
        for _, p in named:
            groups.setdefault((p.device, p.dtype), []).append(p.detach())
        for (_, dtype), tensors in groups.items():
            acc = torch.float64 if dtype == torch.float64 else torch.float32
            norms = [torch.stack(torch._foreach_norm(tensors, order, dtype=acc)) for order in (1, 2)]
            digest.update(torch.stack(norms).cpu().numpy().tobytes())
        for name, layer in module.named_modules():
            if hasattr(layer, "active_adapters") and hasattr(layer, "scaling"):  # a peft tuner layer
                digest.update(repr((name, list(layer.active_adapters), sorted(layer.scaling.items()),
                                    getattr(layer, "disable_adapters", False),
                                    list(getattr(layer, "merged_adapters", [])))).encode())
    return digest.hexdigest()


@dataclass
class ReferenceCache:
    """What one reference image leaves behind: ReferenceNet tokens and, once precomputed, their K/V.

    ``tokens[name]``: (B_ref, N, C) input of ReferenceNet's self-attention ``name``.
    ``kv[name]``: (key, value), each (B_ref, N, inner_dim), projected by the main UNet's layer ``name``.
    ``context``: the cross-attention context the ReferenceNet ran with, (B_ref, L, D), kept for models whose
    context comes from the reference image itself (an image-prompt encoder) so every denoiser call reuses it.
    ``key``: identifies the reference (content hash, prompt, pose, the weights that made the tokens).
    ``kv_fingerprint``: the main UNet's projections, device and dtype the K/V were computed with.
    ``inputs``: what the pipeline made it from (image, pose, prompt), to make it again when weights change.
    ``key_mask``: optional (B_ref, 1, H, W), > 0 where the reader may look: each reading layer resamples it
    to its token grid and attends only to the reference tokens it covers (its own tokens always). Set by
    training's ``reference_focus`` (the person's region from the reference pose); ``None`` reads them all.
    """

    tokens: dict[str, torch.Tensor] = field(default_factory=dict)
    kv: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    key: str | None = None
    kv_fingerprint: str | None = None
    inputs: tuple | None = field(default=None, repr=False)
    context: torch.Tensor | None = field(default=None, repr=False)
    key_mask: torch.Tensor | None = field(default=None, repr=False)

    @staticmethod
    def projection_fingerprint(unet: torch.nn.Module, device: torch.device | str | None = None) -> str:
        """What the K/V depend on besides the tokens: every reading layer's ``to_k``/``to_v`` (weights and
        LoRA state) and where the K/V are kept."""
        layers = [unet.get_submodule(name) for name in spatial_self_attention_names(unet)]
        projections = [proj for attn in layers for proj in (attn.to_k, attn.to_v)]
        return f"{weights_fingerprint(*projections)}@{device}"

    @torch.no_grad()
    def precompute_kv(self, unet: torch.nn.Module, device: torch.device | str | None = None) -> None:
        """Project every layer's reference tokens with the main UNet's ``to_k``/``to_v`` once.

        The projections run where the weights are (under model CPU offload that is the CPU); the K/V are
        kept on ``device`` (default: the weights' device), where the UNet will run.
        """
        self.kv = {}
        for name, tokens in self.tokens.items():
            attn = unet.get_submodule(name)
            weight = attn.to_k.weight
            tokens = tokens.to(device=weight.device, dtype=weight.dtype)
            k, v = attn.to_k(tokens), attn.to_v(tokens)
            self.kv[name] = (k.to(device or weight.device), v.to(device or weight.device))
        self.kv_fingerprint = self.projection_fingerprint(unet, device)

    def refresh_kv(self, unet: torch.nn.Module, device: torch.device | str | None = None) -> bool:
        """Recompute the K/V if the UNet's projections (or the device) changed since; returns whether it did."""
        if self.kv and self.kv_fingerprint == self.projection_fingerprint(unet, device):
            return False
        self.precompute_kv(unet, device)
        return True

    def to(self, device=None, dtype=None, **kwargs) -> "ReferenceCache":
        """Move the tensors (accelerate's offload hooks call this on every UNet call: then it is a no-op)."""
        tensors = list(self.tokens.values()) + [t for pair in self.kv.values() for t in pair]
        tensors += [self.context] if self.context is not None else []
        if all(_on(t, device) and (dtype is None or t.dtype == dtype) for t in tensors):
            return self
        self.tokens = {n: t.to(device=device, dtype=dtype) for n, t in self.tokens.items()}
        self.kv = {n: (k.to(device=device, dtype=dtype), v.to(device=device, dtype=dtype)) for n, (k, v) in self.kv.items()}
        if self.context is not None:
            self.context = self.context.to(device=device, dtype=dtype)
        self.kv_fingerprint = None  # recomputed (or confirmed) on the next use
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensor dict (safetensors-friendly) of the captured tokens (and the context, when kept)."""
        state = {f"tokens.{n}": t.contiguous() for n, t in self.tokens.items()}
        if self.context is not None:
            state["context"] = self.context.contiguous()
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], key: str | None = None) -> "ReferenceCache":
        tokens = {n[len("tokens.") :]: t for n, t in state.items() if n.startswith("tokens.")}
        return cls(tokens=tokens, key=key, context=state.get("context"))


def _on(tensor: torch.Tensor, device) -> bool:
    """Whether ``tensor`` already lives on ``device``: the same type, and the same index where ``device`` names
    one (a CPU has one device, whatever index is written)."""
    if device is None:
        return True
    device = torch.device(device)
    if tensor.device.type != device.type:
        return False
    return device.type == "cpu" or device.index is None or tensor.device.index == device.index


@dataclass
class ReferenceState:
    """A pipeline's current reference: ``cache`` (None until one is set) and ``enabled`` (False: the main
    UNet ignores it; the "no reference attention" ablation). Each pipeline has its own."""

    cache: ReferenceCache | None = None
    enabled: bool = True

    def for_call(self) -> ReferenceCache | None:
        """What the main UNet reads in its next call (None: plain self-attention)."""
        return self.cache if self.enabled else None


class PassThroughProcessor(AttnProcessor2_0):
    """diffusers' default attention for the layers that neither write nor read the reference (``attn2``):
    it accepts the reference keyword arguments that every transformer block passes on, and ignores them."""

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 reference: ReferenceCache | None = None, reference_out: ReferenceCache | None = None,
                 reference_skip_rows: int = 0):
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReferenceWriteProcessor(PassThroughProcessor):
    """ReferenceNet self-attention: record the input tokens into ``reference_out``, then attend as usual."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 reference: ReferenceCache | None = None, reference_out: ReferenceCache | None = None,
                 reference_skip_rows: int = 0):
        if reference_out is not None:
            reference_out.tokens[self.name] = hidden_states  # (B_ref, N, C)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReferenceReadProcessor(PassThroughProcessor):
    """Main-UNet spatial self-attention over ``[own tokens ; reference tokens]`` (plain without a reference)."""

    def __init__(self, name: str):
        self.name = name

    def _reference_kv(self, attn: Attention, reference: ReferenceCache | None):
        if reference is None:
            return None
        if self.name in reference.kv:
            return reference.kv[self.name]
        tokens = reference.tokens.get(self.name)
        if tokens is None:
            return None
        return attn.to_k(tokens), attn.to_v(tokens)  # trainable path: projections carry gradients

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 reference: ReferenceCache | None = None, reference_out: ReferenceCache | None = None,
                 reference_skip_rows: int = 0):
        ref = self._reference_kv(attn, reference)
        if ref is None or encoder_hidden_states is not None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if attention_mask is not None or attn.group_norm is not None or attn.spatial_norm is not None:
            raise NotImplementedError("reference attention supports plain self-attention layers (SD1.5 attn1)")
        if reference_skip_rows:
            # the first rows (classifier-free guidance's unconditional half, in the AnimateAnyone family) attend
            # to their own tokens only; the reference K/V serve the remaining rows
            skip = int(reference_skip_rows)
            if not 0 < skip < hidden_states.shape[0]:
                raise ValueError(f"reference_skip_rows={skip} must leave rows on both sides of a batch of "
                                 f"{hidden_states.shape[0]}")
            plain = super().__call__(attn, hidden_states[:skip], None, None, temb)
            reading = self._read(attn, hidden_states[skip:], ref, reference.key_mask)
            return torch.cat([plain, reading])
        return self._read(attn, hidden_states, ref, reference.key_mask)

    @staticmethod
    def _read(attn: Attention, hidden_states: torch.Tensor, ref, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = hidden_states.shape[0]  # hidden_states (B*F, N, C), frames of one clip contiguous: b*F + f
        k_ref, v_ref = ref  # (B_ref, N_ref, inner)
        if k_ref.shape[0] == 1:
            k_ref, v_ref = k_ref.expand(batch, -1, -1), v_ref.expand(batch, -1, -1)
        elif batch % k_ref.shape[0] == 0:
            repeats = batch // k_ref.shape[0]  # reference b serves rows b*repeats ... (b+1)*repeats - 1
            k_ref, v_ref = k_ref.repeat_interleave(repeats, 0), v_ref.repeat_interleave(repeats, 0)
        else:
            raise ValueError(f"reference batch {k_ref.shape[0]} does not divide the UNet batch {batch}")

        query = attn.to_q(hidden_states)
        key = torch.cat([attn.to_k(hidden_states), k_ref.to(query.dtype)], dim=1)  # (B*F, N + N_ref, inner)
        value = torch.cat([attn.to_v(hidden_states), v_ref.to(query.dtype)], dim=1)
        mask = None
        if key_mask is not None:
            keep = token_mask(key_mask, k_ref.shape[1])  # (B_ref, N_ref) bool
            keep = keep.repeat_interleave(batch // keep.shape[0], 0) if keep.shape[0] != batch else keep
            own = torch.ones(batch, hidden_states.shape[1], dtype=torch.bool, device=keep.device)
            mask = torch.cat([own, keep], dim=1)[:, None, None, :]  # (B*F, 1, 1, N + N_ref)

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def token_mask(mask: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """A (B, 1, H, W) region -> (B, num_tokens) bool over a layer's token grid (the image's aspect ratio,
    ``num_tokens`` = h * w cells): a cell is kept when the region touches it. A reference whose region
    misses every cell keeps all of them (never an empty attention)."""
    height, width = mask.shape[-2:]
    scale = math.sqrt(height * width / num_tokens)
    h, w = max(1, round(height / scale)), max(1, round(width / scale))
    if h * w != num_tokens:
        raise ValueError(f"a {height}x{width} key mask has no {num_tokens}-token grid of the same aspect ratio")
    keep = F.adaptive_max_pool2d(mask.float(), (h, w)).flatten(1) > 0  # (B, N)
    return keep | ~keep.any(dim=1, keepdim=True)


def install_reference_processors(unet: torch.nn.Module, role: str) -> list[str]:
    """Put write (``role="write"``) or read (``role="read"``) processors on ``unet``'s spatial
    self-attentions and pass-through ones on its other spatial attentions (``attn2``), which receive the
    same keyword arguments. Motion-module attentions keep theirs. Returns the self-attention names.
    Idempotent: installing again (a pipeline built from another's components) changes nothing."""
    if role not in ("write", "read"):
        raise ValueError(f"role must be 'write' or 'read', got {role!r}")
    cls = ReferenceWriteProcessor if role == "write" else ReferenceReadProcessor
    names = spatial_self_attention_names(unet)
    for name, module in unet.named_modules():
        if not isinstance(module, Attention) or "motion_modules" in name:
            continue
        if name in names:
            if not isinstance(module.processor, cls):
                module.set_processor(cls(name))
        elif not isinstance(module.processor, PassThroughProcessor):
            module.set_processor(PassThroughProcessor())
    return names


def run_reference_net(reference_unet: torch.nn.Module, latents: torch.Tensor, text: torch.Tensor,
                      pose_features: torch.Tensor | None = None, added_cond_kwargs: dict | None = None
                      ) -> ReferenceCache:
    """ReferenceNet "write" pass: a new cache holding every ``attn1`` input.

    ``latents`` (B_ref, 4, h, w); ``text`` (B_ref, 77, D); ``pose_features`` (B_ref, C, h, w), the
    reference pose encoded by :meth:`PoseGuider.encode_reference`, added to the output of the
    ReferenceNet's ``conv_in`` (as the target pose is added after the main UNet's); ``added_cond_kwargs``:
    an SDXL ReferenceNet's added conditioning, ``{"text_embeds": (B_ref, P), "time_ids": (B_ref, 6)}``.
    Gradients flow if enabled by the caller.
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
    try:
        reference_unet(latents, torch.zeros((), device=latents.device), encoder_hidden_states=text,
                       cross_attention_kwargs={"reference_out": cache}, added_cond_kwargs=added_cond_kwargs,
                       return_dict=False)
    finally:
        if hook is not None:
            hook.remove()
    if not cache.tokens:
        raise ValueError("the ReferenceNet recorded no tokens: its self-attention layers have no reference "
                         "write processors (install_reference_processors(reference_unet, 'write')).")
    return cache
