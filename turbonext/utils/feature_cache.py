"""An on-disk cache of computed features, keyed by a content hash of the inputs and settings.

A key is the SHA-256 of a canonical encoding of every part and setting passed to :meth:`FeatureCache.key`:
arrays and images by their bytes, dtype and shape; files by their content; tensors by their
values, dtype and shape; plain values by their JSON form. Pass everything that changes the result
(model revision, dtype, sizes, thresholds, detector weights...): a changed setting is a new key,
never a stale hit.

Entries are written atomically (temporary file, then rename) so an interrupted run never leaves
a half-written entry. Layout: ``cache_dir/<kind>/<key[:2]>/<key>.<ext>`` with kinds ``tensors``
(safetensors), ``arrays`` (compressed npz), ``images`` (lossless PNG) and ``json``.

Example (the ReferenceNet cache of one reference image)::

    cache = FeatureCache("~/.cache/turbonext/features")
    key = cache.key("reference-net", image, model_revision=rev, dtype="float16", size=512)
    tensors = cache.load_tensors(key, device=str(pipe.device))
    if tensors is None:
        tensors = compute(...)
        cache.save_tensors(key, tensors)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from turbonext.utils.hashing import hash_file


CACHE_FORMAT_VERSION = 1
_EXT = {"tensors": ".safetensors", "arrays": ".npz", "images": ".png", "json": ".json"}


def default_cache_dir() -> Path:
    """``$TURBONEXT_CACHE``, else ``$XDG_CACHE_HOME/turbonext``, else ``~/.cache/turbonext``."""
    if os.environ.get("TURBONEXT_CACHE"):
        return Path(os.environ["TURBONEXT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "turbonext"


def _feed(digest: "hashlib._Hash", value: Any) -> None:
    """Feed one part into the digest, tagged with its type so different types never collide."""
    if isinstance(value, Image.Image):
        digest.update(f"image:{value.mode}:{value.size}:".encode())
        digest.update(value.tobytes())
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        digest.update(f"array:{array.dtype.str}:{array.shape}:".encode())
        digest.update(array.tobytes())
    elif hasattr(value, "detach") and hasattr(value, "dtype") and hasattr(value, "shape"):  # a torch tensor
        import torch

        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Path):
        if not value.is_file():
            raise ValueError(f"cache key part {value} is a Path but not an existing file; pass str(path) to key by the name.")
        digest.update(f"file:{hash_file(value)}".encode())
    elif isinstance(value, (bytes, bytearray)):
        digest.update(b"bytes:" + bytes(value))
    elif isinstance(value, dict):
        digest.update(b"dict{")
        for k in sorted(value, key=str):
            _feed(digest, str(k))
            _feed(digest, value[k])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(f"seq{len(value)}[".encode())
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    elif value is None or isinstance(value, (bool, int, float, str, np.generic)):
        scalar = value.item() if isinstance(value, np.generic) else value
        digest.update(("json:" + json.dumps(scalar)).encode())
    else:
        raise ValueError(
            f"cannot hash a {type(value).__name__} into a cache key; pass arrays, images, tensors, "
            f"Paths of files, bytes, str/int/float/bool/None, or lists/dicts of those."
        )
    digest.update(b";")


class FeatureCache:
    """Content-addressed on-disk cache.

    Args:
        cache_dir: the folder (created on first write). None: :func:`default_cache_dir`.
        enabled: False turns every load into a miss and every save into a no-op (``--no-cache``).
    """

    def __init__(self, cache_dir: str | Path | None = None, enabled: bool = True) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.cache_dir)!r}, enabled={self.enabled}, hits={self.hits}, misses={self.misses})"

    # ------------------------------------------------------------------------------ keys, paths
    @staticmethod
    def key(*parts: Any, **settings: Any) -> str:
        """Hex SHA-256 over ``parts`` (in order) and ``settings`` (by name)."""
        digest = hashlib.sha256(f"turbonext-feature-cache-v{CACHE_FORMAT_VERSION};".encode())
        _feed(digest, list(parts))
        _feed(digest, dict(settings))
        return digest.hexdigest()

    def path(self, key: str, kind: str) -> Path:
        """Where the entry ``key`` of ``kind`` ("tensors", "arrays", "images", "json") lives."""
        if kind not in _EXT:
            raise ValueError(f"unknown cache kind {kind!r}; expected one of {', '.join(_EXT)}.")
        if not isinstance(key, str) or len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"cache keys are hex digests from FeatureCache.key(); got {key!r}.")
        path = self.cache_dir / kind / key[:2] / f"{key}{_EXT[kind]}"
        self._check_inside(path)
        return path

    def _check_inside(self, path: Path) -> None:
        """Refuse (``ValueError``) an entry reached through a symbolic link inside the cache (its kind or shard
        folder, or the entry itself): the cache reads and writes only under ``cache_dir`` (which itself may be
        a link, e.g. ~/.cache on another disk)."""
        rel = path.relative_to(self.cache_dir)
        current = self.cache_dir
        for part in rel.parts:
            current = current / part
            if current.is_symlink():
                raise ValueError(f"cache entry path {current} is a symbolic link (to {current.resolve()}); the feature "
                                 f"cache only reads and writes inside {self.cache_dir}. Remove the link, or clear the cache.")

    def contains(self, key: str, kind: str) -> bool:
        """Whether an entry exists (always False when disabled); does not count as a hit or miss."""
        return self.enabled and self.path(key, kind).is_file()

    def _lookup(self, key: str, kind: str) -> Path | None:
        if not self.enabled:
            self.misses += 1
            return None
        path = self.path(key, kind)
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        return path

    def _write(self, key: str, kind: str, writer: Callable[[Path], None]) -> Path | None:
        if not self.enabled:
            return None
        path = self.path(key, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=_EXT[kind], dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            writer(tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @staticmethod
    def _corrupt(path: Path, err: Exception) -> ValueError:
        return ValueError(f"cache entry {path} is corrupt or unreadable ({err}); delete it (or run with --no-cache).")

    # ---------------------------------------------------------------------------------- tensors
    def save_tensors(self, key: str, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> Path | None:
        """Save a dict of torch tensors with safetensors (tensors are moved to CPU, made contiguous)."""
        from safetensors.torch import save_file

        cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        return self._write(key, "tensors", lambda p: save_file(cpu, str(p), metadata=metadata))

    def load_tensors(self, key: str, device: str = "cpu") -> dict[str, Any] | None:
        """The dict of torch tensors saved under ``key`` (on ``device``), or None on a miss."""
        path = self._lookup(key, "tensors")
        if path is None:
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=device)
        except (SafetensorError, OSError) as err:
            raise self._corrupt(path, err) from err

    # ----------------------------------------------------------------------------------- arrays
    def save_arrays(self, key: str, arrays: dict[str, np.ndarray]) -> Path | None:
        """Save a dict of numpy arrays (compressed npz; no pickled objects)."""
        for name, value in arrays.items():
            if np.asarray(value).dtype == object:
                raise ValueError(f"array {name!r} has dtype object; the cache stores numeric arrays only.")
        return self._write(key, "arrays", lambda p: np.savez_compressed(p, **arrays))

    def load_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The dict of arrays saved under ``key``, or None on a miss."""
        path = self._lookup(key, "arrays")
        if path is None:
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise self._corrupt(path, err) from err

    def save_array(self, key: str, array: np.ndarray) -> Path | None:
        """Save one array."""
        return self.save_arrays(key, {"array": np.asarray(array)})

    def load_array(self, key: str) -> np.ndarray | None:
        """One array saved with :meth:`save_array`, or None on a miss."""
        arrays = self.load_arrays(key)
        return None if arrays is None else arrays["array"]

    # ----------------------------------------------------------------------------------- images
    def save_image(self, key: str, image: Image.Image) -> Path | None:
        """Save a PIL image losslessly (PNG)."""
        if not isinstance(image, Image.Image):
            raise ValueError(f"save_image expects a PIL.Image.Image; got {type(image).__name__}.")
        return self._write(key, "images", lambda p: image.save(p, format="PNG"))

    def load_image(self, key: str) -> Image.Image | None:
        """The image saved under ``key`` (fully loaded), or None on a miss."""
        path = self._lookup(key, "images")
        if path is None:
            return None
        try:
            with Image.open(path) as img:
                img.load()
                return img.copy()
        except (UnidentifiedImageError, OSError) as err:
            raise self._corrupt(path, err) from err

    # ------------------------------------------------------------------------------------- json
    def save_json(self, key: str, value: Any) -> Path | None:
        """Save a JSON-serialisable value."""
        text = json.dumps(value, sort_keys=True)
        return self._write(key, "json", lambda p: p.write_text(text))

    def load_json(self, key: str) -> Any | None:
        """The JSON value saved under ``key``, or None on a miss."""
        path = self._lookup(key, "json")
        if path is None:
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as err:
            raise self._corrupt(path, err) from err

    # ------------------------------------------------------------------------------ maintenance
    def size_bytes(self) -> int:
        """Total size of the cache on disk."""
        if not self.cache_dir.exists():
            return 0
        return sum(p.stat().st_size for p in self.cache_dir.rglob("*") if p.is_file())

    def clear(self) -> None:
        """Delete every entry this cache wrote (only the kind folders inside ``cache_dir``)."""
        import shutil

        for kind in _EXT:
            folder = self.cache_dir / kind
            if folder.is_symlink():  # the link only, never what it points to
                folder.unlink()
            elif folder.exists():
                shutil.rmtree(folder)
