"""Where weights come from: local folders, the embedded demo, or the Hub (downloaded first), and the
default public component repos."""

from __future__ import annotations

import logging
import os
from pathlib import Path


logger = logging.getLogger(__name__)

DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-3"
DEFAULT_TINY_VAE = "madebyollin/taesd"
DEFAULT_LCM_LORA = "latent-consistency/lcm-lora-sdv1-5"
DEMO_MODEL_NAME = "turbonext-demo"
# Only what loading needs: configs, tokenizer files and safetensors (never pickled .bin/.ckpt).
ALLOW_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.md"]


class MissingWeightsError(FileNotFoundError):
    """Weights were asked for that are neither on disk nor reachable on the Hub."""


def is_repo_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hub repo id, owner/name (not a path)."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and all(text.split("/"))


def demo_model_path() -> Path:
    """Folder of the embedded demo model shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "demo" / "turbonext-demo"


def resolve_pretrained_path(name_or_path: str | os.PathLike, revision: str | None = None,
                            cache_dir: str | None = None, local_files_only: bool = False,
                            token: str | bool | None = None) -> str:
    """A local folder for ``name_or_path``: the folder itself, the embedded demo, or a Hub snapshot.

    diffusers refuses to load Hub repos whose components live in a third-party package, so a repo
    id is downloaded with ``snapshot_download`` first and the local snapshot is loaded.
    """
    path = Path(os.fspath(name_or_path)).expanduser()
    if path.is_dir():
        return str(path)
    if str(name_or_path) == DEMO_MODEL_NAME:
        demo = demo_model_path()
        if not (demo / "model_index.json").is_file():
            raise MissingWeightsError(
                f"the embedded demo model is not in this installation (looked in {demo}). "
                "Reinstall turbonext, or pass a local model folder or a Hub repo id."
            )
        return str(demo)
    if path.suffix or not is_repo_id(str(name_or_path)):
        raise MissingWeightsError(
            f"{name_or_path!r} is not an existing folder and not a Hub repo id of the form 'owner/name'."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(
            str(name_or_path), revision=revision, cache_dir=cache_dir, allow_patterns=ALLOW_PATTERNS,
            local_files_only=local_files_only, token=token,
        )
    except LocalEntryNotFoundError as err:
        raise MissingWeightsError(
            f"weights for {name_or_path!r} are not in the local Hub cache and the Hub cannot be reached "
            f"(offline?). Download them once with network access, or pass a local folder. ({err})"
        ) from err
