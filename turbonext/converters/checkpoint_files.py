"""Reading a checkpoint family's files safely: local folders or Hub repos, ``.pth`` only as plain tensors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from turbonext.loaders.hub import is_repo_id


class UnsafeCheckpointError(ValueError):
    """A checkpoint that cannot be read as plain tensors (it would need arbitrary Python objects unpickled)."""


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` from ``.safetensors``, or from ``.pth``/``.pt``/``.ckpt``/``.bin`` read with
    ``torch.load(..., weights_only=True)``: tensors and plain containers only, never arbitrary objects. A file that
    needs more is refused with :class:`UnsafeCheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix not in (".pth", ".pt", ".ckpt", ".bin"):
        raise ValueError(f"{path.name}: unknown checkpoint format {path.suffix!r}; expected .safetensors or "
                         ".pth/.pt/.ckpt/.bin.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path.name} cannot be read as plain tensors: it needs Python objects unpickled, which could run "
            f"arbitrary code, so turbonext refuses it (torch.load(..., weights_only=True) said: "
            f"{str(err).splitlines()[0]}). Re-save it as a plain state dict or safetensors in an environment you "
            "trust, or get a safetensors copy from its authors.") from err
    if isinstance(state, dict) and set(state) <= {"state_dict", "module"} and len(state) == 1:
        state = next(iter(state.values()))  # {"state_dict": {...}} wrappers
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise UnsafeCheckpointError(f"{path.name} is not a flat state dict of tensors (name -> tensor).")
    return state


def fetch_files(src: str | os.PathLike, relative_paths: list[str], subfolder_fallback: bool = True,
                cache_dir: str | None = None, local_files_only: bool = False, token=None) -> dict[str, Path]:
    """Local paths of ``relative_paths`` under ``src``: a local folder (each file at its relative path or, with
    ``subfolder_fallback``, by its bare name), or a Hub repo id, downloaded with ``snapshot_download`` restricted
    to exactly those files."""
    folder = Path(os.fspath(src)).expanduser()
    if not folder.is_dir():
        if not is_repo_id(str(src)):
            raise FileNotFoundError(f"{src!r} is neither a folder nor a Hub repo id ('owner/name').")
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(str(src), allow_patterns=list(relative_paths), cache_dir=cache_dir,
                                        local_files_only=local_files_only, token=token))
    found, missing = {}, []
    for rel in relative_paths:
        candidates = [folder / rel] + ([folder / Path(rel).name] if subfolder_fallback else [])
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            missing.append(rel)
        else:
            found[rel] = hit
    if missing:
        raise FileNotFoundError(f"{src}: missing {', '.join(missing)} (looked in {folder}).")
    return found
