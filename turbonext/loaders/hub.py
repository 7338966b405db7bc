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
# SDXL's counterparts: from_components(base=<an SDXL repo>) takes these where the SD1.5 ones are the default
DEFAULT_SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
DEFAULT_SDXL_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-sdxl-beta"
DEFAULT_SDXL_TINY_VAE = "madebyollin/taesdxl"
DEFAULT_SDXL_LCM_LORA = "latent-consistency/lcm-lora-sdxl"
BACKBONE_DEFAULT = "default"  # an argument left at this: the backbone's own default repo (SD1.5's or SDXL's above)
DEMO_MODEL_NAME = "turbonext-demo"
# Only what loading needs: configs, tokenizer files and safetensors (never pickled .bin/.ckpt).
ALLOW_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.md"]


class MissingWeightsError(FileNotFoundError):
    """Weights were asked for that are neither on disk nor reachable on the Hub."""


class InvalidModelFolderError(ValueError):
    """A model folder that cannot be loaded as it is: unreadable model_index.json, a component name that
    leaves the folder, a truncated or corrupt safetensors file."""


# Files that hold a component's configuration and no weights: a folder with only these needs none.
_WEIGHTLESS_CONFIGS = ("scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json")
_SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit on the header's size


def check_safetensors_file(path: str | os.PathLike) -> None:
    """Check that ``path`` is a complete safetensors file from its header alone (no tensor is read): an
    8-byte header length, a JSON header, and a file exactly as long as the header says. Raises
    :class:`InvalidModelFolderError` naming the file and what is wrong (empty, truncated, not safetensors)."""
    import json
    import struct

    path = Path(path)
    size = path.stat().st_size
    fix = "download it again (or re-export the model)"
    if size < 8:
        raise InvalidModelFolderError(f"{path} is {'empty' if size == 0 else 'truncated'} ({size} bytes): {fix}.")
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > min(size - 8, _SAFETENSORS_HEADER_LIMIT):
            raise InvalidModelFolderError(
                f"{path} is truncated or not a safetensors file (its header claims {header_len} bytes, the file "
                f"has {size}): {fix}.")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InvalidModelFolderError(f"{path} is not a valid safetensors file (its header is not JSON: {err}): "
                                          f"{fix}.") from err
    if not isinstance(header, dict):
        raise InvalidModelFolderError(f"{path} is not a valid safetensors file (its header is not a JSON object): {fix}.")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError) as err:
        raise InvalidModelFolderError(f"{path} is not a valid safetensors file (bad tensor entry: {err}): {fix}.") from err
    expected = 8 + header_len + end
    if size != expected:
        state = "truncated" if size < expected else "corrupt (longer than its header says)"
        raise InvalidModelFolderError(f"{path} is {state}: {size} bytes, its header says {expected}: {fix}.")


def check_pipeline_folder(folder: str | os.PathLike) -> None:
    """Check a pipeline folder before diffusers loads it, so that a broken download gets one clear sentence:
    model_index.json is readable, its component names are plain folder names (no ``..`` or ``/``: a
    component cannot be read from outside the folder), every component folder exists, and every model
    component has complete safetensors weights (a ``.bin`` never counts: turbonext loads safetensors only).
    Raises :class:`MissingWeightsError` (a missing folder or weights file) or :class:`InvalidModelFolderError`."""
    import json

    folder = Path(folder)
    index_path = folder / "model_index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidModelFolderError(f"{index_path} cannot be read ({err}): download the model again.") from err
    if not isinstance(index, dict):
        raise InvalidModelFolderError(f"{index_path} is not a JSON object: download the model again.")
    for name, spec in index.items():
        if name.startswith("_") or not (isinstance(spec, list) and len(spec) == 2 and all(spec)):
            continue  # settings, and optional components that are absent ([null, null])
        if name in ("", ".", "..") or "/" in name or "\\" in name or os.sep in name:
            raise InvalidModelFolderError(f"{index_path} names a component {name!r}: component names must be plain "
                                          "folder names inside the model folder.")
        part = folder / name
        if not part.is_dir():
            raise MissingWeightsError(f"the model folder {folder} has no {name}/ folder, which model_index.json lists "
                                      f"({spec[0]}.{spec[1]}): download the model again.")
        if any((part / config).is_file() for config in _WEIGHTLESS_CONFIGS) or not (part / "config.json").is_file():
            continue  # a scheduler, tokenizer or image processor: no weights
        weights = sorted(part.glob("*.safetensors"))
        if not weights:
            pickled = sorted(p.name for p in part.iterdir() if p.suffix in (".bin", ".ckpt", ".pt", ".pth"))
            extra = f" ({', '.join(pickled)} is never loaded: pickled weights can run code)" if pickled else ""
            raise MissingWeightsError(f"{part} has no .safetensors weights{extra}: download the model again, or "
                                      "convert the weights to safetensors.")
        for index_file in part.glob("*.safetensors.index.json"):  # sharded weights: every shard must be there
            try:
                shards = set(json.loads(index_file.read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError, TypeError) as err:
                raise InvalidModelFolderError(f"{index_file} cannot be read ({err}): download the model again.") from err
            for shard in sorted(shards):
                if Path(shard).name != shard or not (part / shard).is_file():
                    raise MissingWeightsError(f"{index_file} lists the shard {shard!r}, which is not in {part}: "
                                              "download the model again.")
        for file in weights:
            check_safetensors_file(file)


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
        return _checked(path)
    if str(name_or_path) == DEMO_MODEL_NAME:
        demo = demo_model_path()
        if not (demo / "model_index.json").is_file():
            raise MissingWeightsError(
                f"the embedded demo model is not in this installation (looked in {demo}). "
                "Reinstall turbonext, or pass a local model folder or a Hub repo id."
            )
        return _checked(demo)
    if path.suffix or not is_repo_id(str(name_or_path)):
        raise MissingWeightsError(
            f"{name_or_path!r} is not an existing folder and not a Hub repo id of the form 'owner/name'."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo = str(name_or_path)
    try:
        snapshot = snapshot_download(
            repo, revision=revision, cache_dir=cache_dir, allow_patterns=ALLOW_PATTERNS,
            local_files_only=local_files_only, token=token,
        )
    except LocalEntryNotFoundError as err:
        raise MissingWeightsError(
            f"weights for {repo!r} are not in the local Hub cache and the Hub cannot be reached "
            f"(offline?). Download them once with network access, or pass a local folder. ({err})"
        ) from err
    except GatedRepoError as err:
        raise MissingWeightsError(f"the Hub repo {repo!r} is gated: accept its conditions on huggingface.co and log "
                                  f"in (hf auth login), or pass a local folder. ({_first_line(err)})") from err
    except RepositoryNotFoundError as err:
        raise MissingWeightsError(f"the Hub has no model repo {repo!r} (or it is private: log in with hf auth "
                                  f"login). Check the name, or pass a local folder. ({_first_line(err)})") from err
    except RevisionNotFoundError as err:
        raise MissingWeightsError(f"the Hub repo {repo!r} has no revision {revision!r}. ({_first_line(err)})") from err
    except HFValidationError as err:
        raise MissingWeightsError(f"{repo!r} is not a valid Hub repo id ({_first_line(err)}).") from err
    except Exception as err:  # connection errors, timeouts, server errors, a full disk
        if not isinstance(err, (HfHubHTTPError, OSError)) and not _is_network_error(err):
            raise
        raise MissingWeightsError(
            f"weights for {repo!r} could not be downloaded from the Hub ({type(err).__name__}: {_first_line(err)}). "
            "Check the network (or HF_ENDPOINT), try again, or pass a local folder."
        ) from err
    return _checked(Path(snapshot))


_NETWORK_PACKAGES = {"httpx", "httpx2", "httpcore", "h11", "requests", "urllib3"}


def _is_network_error(err: BaseException) -> bool:
    """An error of the HTTP stack huggingface_hub uses (requests, httpx or httpx2 by version), which it may let
    through from a download."""
    return any(cls.__module__.split(".")[0] in _NETWORK_PACKAGES for cls in type(err).__mro__)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _checked(folder: Path) -> str:
    """``folder`` as a string, after :func:`check_pipeline_folder` when it is a pipeline folder."""
    if (folder / "model_index.json").is_file():
        check_pipeline_folder(folder)
    return str(folder)
