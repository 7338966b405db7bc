"""Key names of the AnimateAnyone family's checkpoints -> turbonext's (diffusers') module names.

Spatial layers (both UNets, the pose guider's convs) already carry diffusers' names in their code, so they map
to themselves. The motion modules use the original AnimateDiff layout, mapped to diffusers' ``MotionAdapter``
names as diffusers' own conversion script maps them:

    ...motion_modules.N.temporal_transformer.X            -> ...motion_modules.N.X
    transformer_blocks.0.attention_blocks.{0,1}.          -> transformer_blocks.0.attn{1,2}.
    transformer_blocks.0.norms.{0,1}. / .ff_norm.         -> transformer_blocks.0.norm{1,2}. / .norm3.
    transformer_blocks.0.attention_blocks.{0,1}.pos_encoder.pe -> transformer_blocks.0.pos_embed.pe

The original gives each of the two attention blocks its own sinusoidal table; diffusers' block has one, applied
before both attentions. Both tables are the same formula; :func:`map_state_dict` checks they are equal before
it keeps one (anything else could not be represented and is reported).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch


_MOTION_RULES = [
    (re.compile(r"\.temporal_transformer\."), "."),
    (re.compile(r"\.attention_blocks\.([01])\.pos_encoder\.pe$"), ".pos_embed.pe"),
    (re.compile(r"\.attention_blocks\.0\."), ".attn1."),
    (re.compile(r"\.attention_blocks\.1\."), ".attn2."),
    (re.compile(r"\.norms\.0\."), ".norm1."),
    (re.compile(r"\.norms\.1\."), ".norm2."),
    (re.compile(r"\.ff_norm\."), ".norm3."),
]


def motion_key(key: str) -> str:
    """An original-layout motion-module key -> diffusers' name (other keys are returned unchanged)."""
    if "motion_modules." not in key:
        return key
    for pattern, repl in _MOTION_RULES:
        key = pattern.sub(repl, key)
    return key


@dataclass
class FileReport:
    """How one source file mapped: ``mapped`` keys, ``unused`` ones (no target), ``duplicates`` (folded into
    one target, verified equal), ``mismatched`` (a target of another shape, or unequal duplicates)."""

    file: str
    target: str
    mapped: int = 0
    unused: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


@dataclass
class MappingReport:
    files: list[FileReport] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)  # target component -> its keys nothing filled
    filled: dict[str, list[str]] = field(default_factory=dict)  # keys the source lacks by design, set to neutral values

    @property
    def ok(self) -> bool:
        return not any(f.unused or f.mismatched for f in self.files) and not any(self.missing.values())

    def format(self) -> str:
        lines = ["file -> component: mapped, unused, missing"]
        for f in self.files:
            extra = (f" (position tables checked against the formula and kept as computed; {len(f.duplicates)} "
                     "duplicates folded)" if f.duplicates else "")
            lines.append(f"  {f.file} -> {f.target}: {f.mapped} mapped{extra}, {len(f.unused)} unused, "
                         f"{len(f.mismatched)} mismatched")
            lines += [f"      unused: {k}" for k in f.unused[:20]]
            lines += [f"      mismatched: {k}" for k in f.mismatched[:20]]
        for target, keys in self.filled.items():
            if keys:
                lines.append(f"  {target}: {len(keys)} not in the source by design, set to zero: {', '.join(keys)} "
                             "(the ReferenceNet's output layers: the reference pass reads only its attention inputs)")
        for target, keys in self.missing.items():
            lines.append(f"  {target}: {len(keys)} missing")
            lines += [f"      missing: {k}" for k in keys[:20]]
        lines.append("OK: every key mapped, none unused, none missing." if self.ok else
                     "FAILED: the checkpoint does not match the architecture (see above).")
        return "\n".join(lines)


def map_state_dict(file: str, target: str, state: dict[str, torch.Tensor], expected: dict[str, tuple],
                   out: dict[str, torch.Tensor], report: MappingReport, rename=motion_key,
                   position_table=None) -> None:
    """Map ``state`` (one source file) into ``out`` (the target component's state dict being filled), checking
    names and shapes against ``expected`` (target key -> shape); records everything in ``report``.
    ``position_table(name)``: the target's own sinusoidal table for a ``pos_embed.pe`` key (kept instead of the
    source's, which must agree with it on their common length)."""
    info = FileReport(file=file, target=target)
    for key, tensor in state.items():
        new = rename(key)
        if new not in expected:
            info.unused.append(key)
            continue
        if new.endswith("pos_embed.pe") and position_table is not None:
            # sinusoidal position tables are a formula, not learned: ours is kept (MusePose's own loader drops the
            # shipped ones); a shipped table must equal it where both are defined
            if not _same_prefix(position_table(new), tensor):
                info.mismatched.append(f"{key}: a position table that is not the sinusoidal formula")
                continue
            if new in out:
                info.duplicates.append(key)
            out[new] = position_table(new)
            info.mapped += 1
            continue
        if tuple(tensor.shape) != tuple(expected[new]):
            info.mismatched.append(f"{key}: {tuple(tensor.shape)} vs {new}: {tuple(expected[new])}")
            continue
        if new in out:
            info.mismatched.append(f"{key}: a second value for {new}")
            continue
        out[new] = tensor
        info.mapped += 1
    report.files.append(info)


def _same_prefix(ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Whether two (1, L, C) position tables agree on their common length (tensors without data, on the meta
    device as in the manifest checks: the same width)."""
    if ours.shape[0] != theirs.shape[0] or ours.shape[-1] != theirs.shape[-1]:
        return False
    if ours.is_meta or theirs.is_meta:
        return True
    n = min(ours.shape[1], theirs.shape[1])
    atol = 1e-5 if theirs.dtype in (torch.float32, torch.float64) else 2e-3  # a half-precision file rounds it
    return torch.allclose(ours[:, :n].float(), theirs[:, :n].float(), atol=atol)


def missing_keys(expected: dict[str, tuple], out: dict[str, torch.Tensor]) -> list[str]:
    return sorted(k for k in expected if k not in out)
