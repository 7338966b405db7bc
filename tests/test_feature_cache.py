"""The on-disk feature cache: keys, hits and misses, every entry kind, corruption, --no-cache."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from turbonext.utils.feature_cache import FeatureCache, default_cache_dir, hash_file


def test_key_is_stable_and_changes_with_every_setting():
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    base = FeatureCache.key("reference-net", image, model_revision="abc", dtype="float16", size=512)
    assert base == FeatureCache.key("reference-net", image.copy(), size=512, dtype="float16", model_revision="abc")
    assert len(base) == 64
    changed = [
        FeatureCache.key("reference-net", image, model_revision="abd", dtype="float16", size=512),
        FeatureCache.key("reference-net", image, model_revision="abc", dtype="bfloat16", size=512),
        FeatureCache.key("reference-net", image, model_revision="abc", dtype="float16", size=256),
        FeatureCache.key("reference-net", image, model_revision="abc", dtype="float16", size=512, extra=None),
        FeatureCache.key("pose", image, model_revision="abc", dtype="float16", size=512),
    ]
    other = image.copy()
    other[0, 0, 0] += 1  # one pixel differs
    changed.append(FeatureCache.key("reference-net", other, model_revision="abc", dtype="float16", size=512))
    changed.append(FeatureCache.key("reference-net", image.astype(np.int16), model_revision="abc", dtype="float16", size=512))
    changed.append(FeatureCache.key("reference-net", image.reshape(4, 12), model_revision="abc", dtype="float16", size=512))
    assert len({base, *changed}) == len(changed) + 1
    # Types never collide: the string "1" is not the int 1; a list is not its items.
    assert FeatureCache.key("1") != FeatureCache.key(1)
    assert FeatureCache.key(["a", "b"]) != FeatureCache.key("a", "b")


def test_key_of_images_tensors_and_files(tmp_path):
    torch = pytest.importorskip("torch")
    img = Image.new("RGB", (8, 8), (10, 20, 30))
    assert FeatureCache.key(img) == FeatureCache.key(img.copy())
    assert FeatureCache.key(img) != FeatureCache.key(img.convert("L"))
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert FeatureCache.key(t) == FeatureCache.key(t.clone())
    assert FeatureCache.key(t) != FeatureCache.key(t.to(torch.float16))
    assert FeatureCache.key(t) != FeatureCache.key(t.T.contiguous())
    f = tmp_path / "video.bin"
    f.write_bytes(b"abc")
    k1 = FeatureCache.key(f)
    f2 = tmp_path / "copy.bin"
    f2.write_bytes(b"abc")
    assert FeatureCache.key(f2) == k1  # by content, not by name
    f.write_bytes(b"abd")
    assert FeatureCache.key(f) != k1 and hash_file(f) != hash_file(f2)
    with pytest.raises(ValueError, match="not an existing file"):
        FeatureCache.key(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="cannot hash"):
        FeatureCache.key(object())


def test_tensor_round_trip_hit_and_miss(tmp_path):
    torch = pytest.importorskip("torch")
    cache = FeatureCache(tmp_path / "cache")
    key = cache.key("reference-net", np.zeros(3), model_revision="r1", dtype="float16")
    assert cache.load_tensors(key) is None
    assert (cache.hits, cache.misses) == (0, 1)
    tensors = {"down.0.attn1": torch.randn(2, 5, 8, dtype=torch.float16), "mid": torch.arange(4)}
    path = cache.save_tensors(key, tensors)
    assert path is not None and path.suffix == ".safetensors" and path.is_file()
    loaded = cache.load_tensors(key)
    assert (cache.hits, cache.misses) == (1, 1)
    assert set(loaded) == set(tensors)
    assert loaded["down.0.attn1"].dtype == torch.float16
    assert torch.equal(loaded["down.0.attn1"], tensors["down.0.attn1"]) and torch.equal(loaded["mid"], tensors["mid"])
    # Another dtype in the key is another entry.
    assert cache.load_tensors(cache.key("reference-net", np.zeros(3), model_revision="r1", dtype="float32")) is None
    assert not list(path.parent.glob(".tmp-*"))  # no temporary files left behind


def test_arrays_images_json_round_trip(tmp_path):
    cache = FeatureCache(tmp_path)
    key = cache.key("poses", "video.mp4", fps=10)
    arrays = {"keypoints": np.random.default_rng(0).random((5, 17, 3)).astype(np.float32), "mask": np.eye(4, dtype=np.uint8)}
    cache.save_arrays(key, arrays)
    got = cache.load_arrays(key)
    assert got["keypoints"].dtype == np.float32 and np.array_equal(got["keypoints"], arrays["keypoints"])
    assert np.array_equal(got["mask"], arrays["mask"])
    cache.save_array(key, np.arange(3))
    assert np.array_equal(cache.load_array(key), np.arange(3))
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (6, 7, 3), dtype=np.uint8))
    cache.save_image(key, img)
    back = cache.load_image(key)
    assert back.size == (7, 6) and np.array_equal(np.asarray(back), np.asarray(img))  # lossless
    cache.save_json(key, {"scenes": [0, 12], "fps": 10})
    assert cache.load_json(key) == {"scenes": [0, 12], "fps": 10}
    assert cache.size_bytes() > 0
    with pytest.raises(ValueError, match="dtype object"):
        cache.save_arrays(key, {"bad": np.array([object()])})
    cache.clear()
    assert cache.load_json(key) is None and cache.size_bytes() == 0


def test_disabled_cache_never_hits_and_writes_nothing(tmp_path):
    cache = FeatureCache(tmp_path / "c", enabled=False)
    key = cache.key("x")
    assert cache.save_json(key, 1) is None
    assert cache.load_json(key) is None and not (tmp_path / "c").exists()
    assert cache.misses == 1 and not cache.contains(key, "json")


def test_corrupt_entries_raise_a_clear_error(tmp_path):
    cache = FeatureCache(tmp_path)
    key = cache.key("x")
    for kind, loader in (("arrays", cache.load_arrays), ("images", cache.load_image), ("json", cache.load_json), ("tensors", cache.load_tensors)):
        path = cache.path(key, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x00garbage")
        with pytest.raises(ValueError, match="corrupt"):
            loader(key)


def test_bad_kind_and_key():
    cache = FeatureCache("unused")
    with pytest.raises(ValueError, match="kind"):
        cache.path(cache.key("x"), "videos")
    with pytest.raises(ValueError, match="hex"):
        cache.path("../../etc/passwd", "json")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TURBONEXT_CACHE", str(tmp_path / "tc"))
    assert default_cache_dir() == tmp_path / "tc"
    monkeypatch.delenv("TURBONEXT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "turbonext"


def test_import_is_light():
    code = "import sys, turbonext.utils.feature_cache; assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
