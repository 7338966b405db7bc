"""A tiny CLIP tokenizer that needs no download: every character is its own token (no BPE merges).

Used by the tiny test components, the random-weight benchmark pipelines and the embedded demo model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def tiny_clip_vocab() -> tuple[dict[str, int], list[str]]:
    """A byte-level BPE vocabulary with no merges: every character is its own token."""
    # GPT-2/CLIP byte-to-unicode table: printable bytes map to themselves, the rest above 255.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, []


def write_tiny_tokenizer(folder: str | os.PathLike) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_clip_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True})
    )
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                    "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})
    )
