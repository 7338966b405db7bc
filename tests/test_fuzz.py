"""Property-based fuzzing (hypothesis) of every entry that takes user data: image files and in-memory images,
videos, pose arrays, the pipeline's arguments and the app's handlers called as functions.

The property everywhere: the call either works (and its result has the documented form) or raises a
documented error: a ``ValueError`` (its subclasses included: the package's own errors, ``gr.Error`` in the app's
handlers) or a ``FileNotFoundError``. Anything else escaping is a bug. Every example is time-bounded
(hypothesis ``deadline``), inputs are generated deterministically (``derandomize``: a run reproduces), and no
example database is kept (``.hypothesis/`` holds only hypothesis' cache of constants, which it git-ignores itself).

The default run takes well under a minute on 2 CPU cores. RELIABILITY.md's figures come from a longer run:
``TURBONEXT_FUZZ_EXAMPLES=N`` gives every cheap test N examples (the ones that render or start ffmpeg N/10),
and ``TURBONEXT_FUZZ_REPORT=path.json`` writes the number of inputs each test tried there (also printed with
``-s``)::

    TURBONEXT_FUZZ_EXAMPLES=1000 TURBONEXT_FUZZ_REPORT=fuzz.json python -m pytest tests/test_fuzz.py -s -q
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import shutil
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from turbonext.data.video_io import MAX_FRAME_PIXELS, iter_frames, write_video
from turbonext.pose import Person
from turbonext.pose.keypoints import as_people, coco_to_openpose, people_from_array
from turbonext.pose.render import POSE_STYLES, render_pose
from turbonext.utils.images import (
    MAX_IMAGE_PIXELS,
    check_image,
    check_images,
    image_to_tensor,
    images_to_tensor,
    load_rgb,
)


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py lives in the repo root

DOCUMENTED = (ValueError, FileNotFoundError)  # ValueError covers the package's own errors and gr.Error
REQUESTED = int(os.environ.get("TURBONEXT_FUZZ_EXAMPLES", "0") or 0)
TRIED: collections.Counter = collections.Counter()


def fuzz(default: int, heavy: bool = False, deadline_s: float = 2.0):
    """hypothesis settings: ``default`` examples (TURBONEXT_FUZZ_EXAMPLES raises them), each within ``deadline_s``."""
    count = default if not REQUESTED else max(default, REQUESTED // 10 if heavy else REQUESTED)
    return settings(max_examples=count, deadline=int(deadline_s * 1000), derandomize=True, database=None,
                    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                            HealthCheck.filter_too_much])


@pytest.fixture(scope="module", autouse=True)
def record_counts():
    """Print (``-s``) and, with TURBONEXT_FUZZ_REPORT, write the number of inputs every test tried."""
    start = time.perf_counter()
    yield
    report = {"inputs_tried": dict(sorted(TRIED.items())), "total": sum(TRIED.values()),
              "seconds": round(time.perf_counter() - start, 1), "examples_setting": REQUESTED or "default"}
    print("\nfuzz inputs tried:", json.dumps(report, indent=1))
    if os.environ.get("TURBONEXT_FUZZ_REPORT"):
        Path(os.environ["TURBONEXT_FUZZ_REPORT"]).write_text(json.dumps(report, indent=1))


def documented(call, *args, **kwargs):
    """``call(*args, **kwargs)``, or None when it raised a documented error (anything else propagates)."""
    try:
        return call(*args, **kwargs)
    except DOCUMENTED:
        return None


# ------------------------------------------------------------------------------------------ image files
def png_bytes(width: int, height: int, bit_depth: int = 8, color_type: int = 2, raw: bytes | None = None) -> bytes:
    """A PNG written by hand (any header, e.g. 20000 x 20000 with almost no data: a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    if raw is None:  # every row: filter byte 0, then zeros (compresses ~1000:1)
        raw = bytes((1 + width * channels * bit_depth // 8) * min(height, 4))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real 16 x 16 JPEG whose frame header claims ``width`` x ``height``."""
    buf = io.BytesIO()
    PIL.Image.new("RGB", (16, 16), (90, 20, 200)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# (mode, format) pairs a user's file can come in: 8/16-bit, palette, alpha, CMYK, float, 1-bit
FILE_KINDS = [("RGB", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("1", "PNG"),
              ("I;16", "PNG"), ("RGB", "JPEG"), ("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "WEBP"), ("RGBA", "WEBP"),
              ("RGB", "BMP"), ("P", "GIF"), ("RGB", "TIFF"), ("CMYK", "TIFF"), ("I", "TIFF"), ("F", "TIFF"),
              ("I;16", "TIFF"), ("RGBA", "TIFF")]


def make_image(mode: str, width: int, height: int, seed: int) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if mode == "I;16":
        return PIL.Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return PIL.Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.int32))
    if mode == "F":
        return PIL.Image.fromarray(rng.random((height, width), dtype=np.float32))
    return PIL.Image.fromarray(rgb).convert(mode)


def encode(image: PIL.Image.Image, fmt: str, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    kwargs = {}
    if orientation is not None:
        exif = PIL.Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def check_rgb(result, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    if result is not None:
        assert isinstance(result, np.ndarray) and result.dtype == np.uint8 and result.ndim == 3
        assert result.shape[2] == 3 and 0 < result.shape[0] * result.shape[1] <= max_pixels
        assert result.flags["C_CONTIGUOUS"]


@fuzz(120)
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".png", ".jpg", ".webp", ".bmp", ".gif", ".txt", ""]))
@example(data=b"", suffix=".png")
@example(data=b"\x89PNG\r\n\x1a\n", suffix=".png")
@example(data=b"\xff\xd8\xff\xe0", suffix=".jpg")
def test_random_bytes_as_an_image_file(tmp_path_factory, data, suffix):
    TRIED["image file: random bytes"] += 1
    path = tmp_path_factory.mktemp("f") / f"upload{suffix}"
    path.write_bytes(data)
    check_rgb(documented(load_rgb, str(path)))


@fuzz(150)
@given(kind=st.sampled_from(FILE_KINDS), width=st.integers(1, 40), height=st.integers(1, 40),
       seed=st.integers(0, 2**16), cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                                         max_size=4))
@example(kind=("RGB", "PNG"), width=1, height=1, seed=0, cut=1.0, flips=[])
@example(kind=("RGB", "JPEG"), width=40, height=40, seed=0, cut=0.5, flips=[])
@example(kind=("RGB", "PNG"), width=40, height=40, seed=0, cut=0.5, flips=[])
def test_truncated_or_damaged_image_files(tmp_path_factory, kind, width, height, seed, cut, flips):
    """Real files of every mode and format, cut short and/or with bytes overwritten (cut=1, no flips: intact)."""
    TRIED["image file: truncated/damaged"] += 1
    mode, fmt = kind
    data = bytearray(encode(make_image(mode, width, height, seed), fmt))
    data = data[: max(0, int(len(data) * cut))] if cut < 1.0 else data
    for where, value in flips:
        if data:
            data[min(len(data) - 1, int(where * len(data)))] = value
    path = tmp_path_factory.mktemp("f") / f"upload.{fmt.lower()}"
    path.write_bytes(bytes(data))
    result = documented(load_rgb, str(path))
    check_rgb(result)
    if cut == 1.0 and not flips:  # an intact file of any of these modes decodes, at its size
        assert result is not None and result.shape == (height, width, 3)
    try:  # the same bytes as an opened, not yet decoded PIL image (what a caller of the library may pass)
        lazy = PIL.Image.open(io.BytesIO(bytes(data)))
    except (OSError, PIL.Image.DecompressionBombError):
        return
    check_rgb(documented(load_rgb, lazy))


@fuzz(60)
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1), fmt=st.sampled_from(["png", "jpeg"]),
       depth=st.sampled_from([(8, 2), (16, 2), (8, 6), (16, 0), (1, 0)]))
@example(width=8001, height=8000, fmt="png", depth=(8, 2))  # just over the limit
@example(width=20000, height=20000, fmt="png", depth=(8, 2))  # 400 MP: over PIL's own hard limit
@example(width=12000, height=12000, fmt="png", depth=(8, 2))  # 144 MP: PIL only warns, then decodes 2 GB
@example(width=20000, height=20000, fmt="jpeg", depth=(8, 2))
@example(width=65500, height=65500, fmt="jpeg", depth=(8, 2))
def test_huge_image_headers_are_refused_quickly(tmp_path_factory, width, height, fmt, depth):
    """Decompression bombs: a small file declaring a huge image is refused from its header, before decoding."""
    if fmt == "jpeg":
        width, height = min(width, 65535), min(height, 65535)
    assume(width * height > MAX_IMAGE_PIXELS)  # an image under the limit is decoded, which may rightly take a while
    TRIED["image file: huge header"] += 1
    if fmt == "png":
        if width * height > 10**9 // 3:  # no rows at all (a real bomb would hold them compressed)
            data = png_bytes(width, height, *depth, raw=b"\x00")
        else:
            data = png_bytes(width, height, *depth)
    else:
        data = jpeg_with_size(width, height)
    path = tmp_path_factory.mktemp("f") / f"bomb.{fmt}"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        result = load_rgb(str(path))
    except ValueError as err:
        assert fmt == "jpeg" or "too large" in str(err)  # a JPEG may be decodable at 1/8 scale, and then is cut short
        result = None
    assert time.perf_counter() - start < 1.0
    check_rgb(result)


def test_the_decompression_bomb_message_says_what_to_do(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(12000, 12000))  # 400 KB that decode to 432 MB (2 GB peak before the fix)
    with pytest.raises(ValueError, match=r"too large: 12000x12000 pixels \(144 MP\); the limit is 64 MP\. Downscale"):
        load_rgb(str(path))
    path.write_bytes(png_bytes(20000, 20000, raw=b"\x00"))  # over PIL's own hard limit: DecompressionBombError before
    with pytest.raises(ValueError, match="too large"):
        load_rgb(str(path))


@fuzz(60)
@given(orientation=st.integers(1, 8), width=st.integers(1, 24), height=st.integers(1, 24), seed=st.integers(0, 99))
def test_exif_rotations_are_honoured(tmp_path_factory, orientation, width, height, seed):
    """A photo whose EXIF says "rotate" comes out turned, as a viewer shows it (lossless PNG: exact pixels)."""
    TRIED["image file: EXIF orientation"] += 1
    image = make_image("RGB", width, height, seed)
    path = tmp_path_factory.mktemp("f") / "photo.png"
    path.write_bytes(encode(image, "PNG", orientation))
    expected = np.asarray(PIL.ImageOps.exif_transpose(PIL.Image.open(path)).convert("RGB"))
    result = load_rgb(str(path))
    turned = orientation in (5, 6, 7, 8)
    assert result.shape == ((width, height, 3) if turned else (height, width, 3))
    np.testing.assert_array_equal(result, expected)
    with PIL.Image.open(path) as opened:  # the same from an opened PIL image
        np.testing.assert_array_equal(load_rgb(opened), expected)


def test_sixteen_bit_cmyk_rgba_palette_files_decode(tmp_path):
    rgb16 = png_bytes(3, 2, 16, 2, raw=b"".join(b"\x00" + struct.pack(">HHH", 65535, 0, 32768) * 3 for _ in range(2)))
    (tmp_path / "rgb16.png").write_bytes(rgb16)
    np.testing.assert_array_equal(load_rgb(str(tmp_path / "rgb16.png"))[0, 0], [255, 0, 128])
    grey16 = PIL.Image.fromarray(np.full((2, 3), 65535, np.uint16))
    grey16.save(tmp_path / "grey16.png")
    assert (load_rgb(str(tmp_path / "grey16.png")) == 255).all()
    PIL.Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    assert tuple(load_rgb(str(tmp_path / "cmyk.jpg"))[0, 0]) > (240, -1, -1)  # red
    PIL.Image.new("RGBA", (3, 2), (255, 255, 255, 0)).save(tmp_path / "clear.png")
    assert (load_rgb(str(tmp_path / "clear.png")) == 0).all()  # transparency is black, the training background
    with pytest.raises(ValueError, match="mode 'CMYK'"):  # a PIL object must already be in an RGB-like mode
        load_rgb(PIL.Image.new("CMYK", (3, 2)))


# ------------------------------------------------------------------------------------ in-memory images
DTYPES = [np.uint8, np.float32, np.float64, np.float16, np.int16, np.int64, np.bool_, np.uint16]
special_floats = st.sampled_from([0.0, 1.0, 0.5, -1.0, 255.0, float("nan"), float("inf"), -float("inf"), 1e30])


@st.composite
def arrays(draw, max_dims: int = 4, max_side: int = 6):
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=0, max_size=max_dims)))
    if draw(st.booleans()) and len(shape) >= 1:
        shape = shape[:-1] + (draw(st.sampled_from([1, 3, 4])),)
    dtype = draw(st.sampled_from(DTYPES))
    array = np.zeros(shape, dtype)
    if array.size and np.issubdtype(dtype, np.floating) and draw(st.booleans()):
        array.flat[draw(st.integers(0, array.size - 1))] = draw(special_floats)
    return array


images_any = st.one_of(
    arrays(),
    arrays().map(torch.from_numpy),
    st.builds(lambda m, w, h: PIL.Image.new(m, (w, h)), st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I",
                                                                         "F", "I;16", "YCbCr", "HSV", "LAB", "La", "PA"]),
              st.integers(0, 5), st.integers(0, 5)),
    st.sampled_from([None, 0, 1.5, "image.png", b"\x89PNG", [], {}, object()]),
)


@fuzz(300)
@given(image=images_any)
@example(image=np.full((2, 2, 3), np.nan, np.float32))
@example(image=np.zeros((0, 0, 3), np.uint8))
@example(image=np.zeros((1, 1, 3), np.uint8))
def test_in_memory_images(image):
    TRIED["image: array/tensor/PIL/other"] += 1
    size = documented(check_image, image)
    tensor = documented(image_to_tensor, image)
    assert (size is None) == (tensor is None)  # the check and the conversion agree
    if tensor is not None:
        assert tensor.dtype == torch.float32 and tensor.shape == (3, *size) and bool(tensor.isfinite().all())
    check_rgb(documented(load_rgb, image))
    batch = documented(images_to_tensor, [image, image])
    if batch is not None:
        assert batch.shape[:2] == (2, 3)


@fuzz(150)
@given(images=st.one_of(st.lists(images_any, max_size=4), arrays(max_dims=5), arrays(max_dims=5).map(torch.from_numpy),
                        st.sampled_from([None, "poses/", 3, (x for x in range(2))])))
@example(images=[])
@example(images=np.zeros((0, 8, 8, 3), np.uint8))
def test_image_sequences(images):
    TRIED["image sequence"] += 1
    shape = documented(check_images, images)
    if shape is not None:
        assert len(shape) == 3 and shape[0] >= 1
        tensor = documented(images_to_tensor, images)
        assert tensor is None or tensor.shape == (shape[0], 3, shape[1], shape[2])


# -------------------------------------------------------------------------------------------------- video
@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    rng = np.random.default_rng(0)
    write_video(path, [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(12)], fps=12)
    return path.read_bytes()


def read_all(path, fps=None) -> int:
    info, frames = iter_frames(path, fps)
    assert info.width * info.height <= MAX_FRAME_PIXELS and info.fps > 0 and math.isfinite(info.duration)
    count = 0
    for index, t, frame in frames:
        assert frame.shape == (info.height, info.width, 3) and frame.dtype == np.uint8 and index == count
        count += 1
    return count


@fuzz(15, heavy=True, deadline_s=15)
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".mp4", ".mov", ".webm", ".gif"]))
@example(data=b"", suffix=".mp4")
def test_random_bytes_as_a_video(tmp_path_factory, data, suffix):
    TRIED["video: random bytes"] += 1
    path = tmp_path_factory.mktemp("v") / f"upload{suffix}"
    path.write_bytes(data)
    documented(read_all, path)


@fuzz(20, heavy=True, deadline_s=15)
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
       fps=st.one_of(st.none(), st.sampled_from([0.0, -1.0, 1.0, 5.0, 1000.0, float("nan")])))
@example(cut=0.5, flips=[], fps=None)
@example(cut=1.0, flips=[], fps=None)
def test_truncated_or_damaged_videos(tmp_path_factory, mp4_bytes, cut, flips, fps):
    TRIED["video: truncated/damaged"] += 1
    data = bytearray(mp4_bytes[: int(len(mp4_bytes) * cut)] if cut < 1.0 else mp4_bytes)
    for where, value in flips:
        if data:
            data[min(len(data) - 1, int(where * len(data)))] = value
    path = tmp_path_factory.mktemp("v") / "upload.mp4"
    path.write_bytes(bytes(data))
    count = documented(read_all, path, fps)
    if cut == 1.0 and not flips and fps is None:
        assert count == 12


def test_video_errors_say_what_is_wrong(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read .*empty.mp4 as a video"):
        iter_frames(tmp_path / "empty.mp4")
    with pytest.raises(ValueError, match="no such file"):
        iter_frames(tmp_path / "missing.mp4")
    import wave

    with wave.open(str(tmp_path / "sound.wav"), "wb") as w:  # audio only, named like a video
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(bytes(1600))
    (tmp_path / "sound.mp4").write_bytes((tmp_path / "sound.wav").read_bytes())
    with pytest.raises(ValueError, match="as a video"):
        iter_frames(tmp_path / "sound.mp4")


# ---------------------------------------------------------------------------------------------- poses
# Coordinates: anything a detector or a caller's array can hold, NaN and infinity included, up to 1e6 px. Larger
# finite values find two bugs in turbonext/pose/render.py (see test_huge_pose_coordinates below).
coords = st.one_of(st.floats(-1e3, 1e3, width=32), st.floats(-1e6, 1e6, width=32),
                   st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf"), -float("inf")]))


@st.composite
def keypoint_arrays(draw):
    people = draw(st.sampled_from([0, 1, 2, 3, 50]))
    shape = draw(st.sampled_from([(people, 17, 3), (people, 17, 2), (17, 3), (17, 2), (people, 18, 3), (3,), (),
                                  (people, 17, 3, 1), (0,)]))
    array = np.asarray(draw(st.lists(coords, min_size=1, max_size=8)), np.float32)
    return np.resize(array, shape) if array.size else np.zeros(shape, np.float32)


@fuzz(200, deadline_s=5)
@given(keypoints=keypoint_arrays(), size=st.one_of(st.integers(-2, 96), st.tuples(st.integers(-1, 80), st.integers(-1, 80)),
                                                   st.just((1, 2, 3))),
       style=st.sampled_from(POSE_STYLES + ("dwpose",)), threshold=st.one_of(st.floats(-1, 2), special_floats),
       as_list=st.booleans())
@example(keypoints=np.full((50, 17, 3), 40.0, np.float32), size=64, style="openpose", threshold=0.3, as_list=False)
@example(keypoints=np.zeros((0, 17, 3), np.float32), size=64, style="turbonext", threshold=0.3, as_list=False)
@example(keypoints=np.full((1, 17, 3), np.nan, np.float32), size=64, style="musepose", threshold=0.3, as_list=True)
@example(keypoints=np.full((1, 17, 3), 1e30, np.float32), size=64, style="openpose", threshold=0.3, as_list=False)
def test_pose_arrays(keypoints, size, style, threshold, as_list):
    TRIED["pose arrays"] += 1
    people = documented(as_people, keypoints)
    if people is not None:
        assert all(isinstance(p, Person) and p.keypoints.shape == (17, 3) for p in people)
        for person in people[:3]:
            assert documented(coco_to_openpose, person.keypoints) is not None
            person.box(), person.area(), person.flipped(64.0), person.transformed(0.5, (1.0, 2.0))
    source = people if (as_list and people) else keypoints
    image = documented(render_pose, source, size=size, style=style, threshold=threshold)
    if image is not None:
        assert isinstance(image, PIL.Image.Image) and image.mode == "RGB"
        w, h = (size, size) if isinstance(size, int) else size
        assert image.size == (w, h)
    documented(people_from_array, keypoints, scores=[1.0] * 2)


def test_huge_pose_coordinates():
    """Found by this fuzz: a finite keypoint near the float32 maximum overflowed the OpenPose renderer's limb mean
    to infinity (OverflowError); fixed in turbonext/pose/render.py."""
    keypoints = np.zeros((17, 2), np.float32)
    keypoints[2::3, 1] = 2.2685492e38
    image = documented(render_pose, keypoints, size=1, style="openpose", threshold=0.0)
    assert image is None or image.size == (1, 1)


def test_render_pose_size_of_the_wrong_type():
    """Found by this fuzz: size=None raised TypeError and size='64' drew a 6x4 image; fixed in render.py."""
    for size in (None, "64"):
        with pytest.raises(ValueError, match="size"):
            render_pose(np.zeros((17, 3), np.float32), size=size)


# --------------------------------------------------------------------------------------- pipeline arguments
@pytest.fixture(scope="module")
def pipe(tiny_pipe_factory):
    return tiny_pipe_factory()


sizes = st.sampled_from([0, 1, 7, 8, 16, 20, 24, 32])
steps_values = st.one_of(st.integers(-3, 3), st.sampled_from([10**6, 2**63]), st.floats(-2, 4), st.none(), st.just(True))


@st.composite
def pose_inputs(draw):
    kind = draw(st.sampled_from(["list", "array", "tensor", "mixed", "other"]))
    frames, h, w = draw(st.integers(0, 3)), draw(sizes), draw(sizes)
    if kind == "list":
        return [np.zeros((h, w, 3), np.uint8) for _ in range(frames)]
    if kind == "array":
        return np.zeros((frames, h, w, 3), draw(st.sampled_from([np.uint8, np.float32, np.int32])))
    if kind == "tensor":
        return torch.zeros(frames, 3, h, w)
    if kind == "mixed":
        return [np.zeros((h, w, 3), np.uint8), PIL.Image.new("RGB", (w, h)), torch.zeros(3, h, w)][: frames + 1]
    return draw(st.sampled_from([None, "pose.png", 7, [None], [[1, 2, 3]]]))


@fuzz(60, heavy=True, deadline_s=20)
@given(poses=pose_inputs(), reference=st.one_of(images_any, st.builds(lambda s: np.zeros((s, s, 3), np.uint8), sizes)),
       steps=steps_values, guidance=st.one_of(st.floats(-1, 3), special_floats),
       output_type=st.sampled_from(["pil", "np", "pt", "latent", "jpeg", ""]),
       window=st.tuples(st.integers(-1, 20), st.integers(-1, 20)), prompt=st.sampled_from([None, "", "a person", 5]))
@example(poses=[np.zeros((8, 8, 3), np.uint8)], reference=np.zeros((8, 8, 3), np.uint8), steps=1, guidance=1.0,
         output_type="np", window=(16, 4), prompt=None)
def test_pipeline_arguments(pipe, poses, reference, steps, guidance, output_type, window, prompt):
    """``TurboNextPipeline.__call__`` with bad sizes, steps, types: a result or a documented error (runs only
    tiny clips, so every valid draw renders)."""
    TRIED["pipeline __call__ arguments"] += 1
    result = documented(pipe, reference_image=reference, pose_images=poses, num_inference_steps=steps,
                        guidance_scale=guidance, output_type=output_type, window_size=window[0],
                        window_overlap=window[1], prompt=prompt, generator=torch.Generator().manual_seed(0))
    if result is not None:
        assert len(result.frames) == 1


WRONG_TYPES = [  # (argument, value); the last 10 escaped as TypeError/AttributeError/RuntimeError when found
    ("num_inference_steps", "4"), ("output_type", None), ("reference_image", "missing.png"),
    ("latents", torch.zeros(3)), ("prompt_embeds", torch.zeros(1, 2)), ("guidance_scale", None),
    ("callback_on_step_end_tensor_inputs", ["nope"]),
    ("guidance_scale", "2"), ("guidance_scale", [1.0]), ("latents", [1.0]), ("prompt_embeds", [1.0]),
    ("generator", "seed"), ("window_size", "16"), ("window_size", None), ("cross_attention_kwargs", "x"),
    ("decode_chunk_size", 0), ("decode_chunk_size", -1),
]


@pytest.mark.parametrize("name, value", [pytest.param(*case, id=f"{case[0]}={case[1]!r}"[:40]) for case in WRONG_TYPES])
def test_pipeline_arguments_of_the_wrong_type(pipe, name, value):
    """One argument of the wrong type (or out of range) at a time: a documented error, never another one."""
    TRIED["pipeline __call__ wrong types"] += 1
    args = dict(reference_image=np.zeros((16, 16, 3), np.uint8), pose_images=[np.zeros((16, 16, 3), np.uint8)] * 2,
                num_inference_steps=1)
    documented(pipe, **{**args, name: value})


# -------------------------------------------------------------------------------------------- the app's handlers
def make_handlers(pipe, folder, users: int = 1):
    """app.py's ``Handlers`` with the fake detector of tests/test_live.py, live frames written under ``folder``
    and room for ``users`` webcam streams (only the arguments this version of app.py takes)."""
    import inspect

    from test_live import FakeDetector

    import app

    wanted = dict(detector_factory=FakeDetector, live_kwargs=dict(num_inference_steps=1, window=4, frames_per_level=1),
                  frames_root=folder, max_live_sessions=users)
    accepted = inspect.signature(app.Handlers).parameters
    return app.Handlers(pipe, **{k: v for k, v in wanted.items() if k in accepted})


@pytest.fixture(scope="module")
def handlers(pipe, tmp_path_factory):
    pytest.importorskip("gradio")
    return make_handlers(pipe, tmp_path_factory.mktemp("live-frames"))


@pytest.fixture(scope="module")
def upload_files(tmp_path_factory, mp4_bytes):
    """What a browser can upload: a real short clip, random bytes, an empty file, an image named .mp4, a folder."""
    folder = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(1)
    write_video(folder / "person.mp4", [rng.integers(30, 255, (48, 64, 3), dtype=np.uint8) for _ in range(4)], fps=12)
    (folder / "noise.mp4").write_bytes(rng.bytes(3000))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "cut.mp4").write_bytes(mp4_bytes[: len(mp4_bytes) // 2])
    PIL.Image.new("RGB", (8, 8)).save(folder / "photo.png")
    (folder / "photo.mp4").write_bytes((folder / "photo.png").read_bytes())
    (folder / "notes.txt").write_text("not a video")
    (folder / "dir.mp4").mkdir()
    return folder


def gradio_error():
    import gradio as gr

    return gr.Error


ui_numbers = st.one_of(st.integers(-5, 300), st.floats(-5, 300), st.sampled_from([float("nan"), 1e18]))


@fuzz(25, heavy=True, deadline_s=30)
@given(reference=st.one_of(images_any, st.builds(lambda s, h: np.random.default_rng(s).integers(0, 255, (h, 40, 3),
                                                                                              dtype=np.uint8),
                                                 st.integers(0, 9), st.integers(1, 90))),
       video=st.sampled_from([None, "", "person.mp4", "noise.mp4", "empty.mp4", "cut.mp4", "photo.mp4", "notes.txt",
                              "dir.mp4", "missing.mp4", "photo.png"]),
       steps=ui_numbers, max_frames=ui_numbers)
@example(reference=np.full((64, 48, 3), 200, np.uint8), video="person.mp4", steps=1, max_frames=8)
def test_upload_handler(handlers, upload_files, reference, video, steps, max_frames):
    """The Upload tab's handler as the browser calls it: whatever the inputs, an MP4 or a gr.Error (a message
    for the user), never another exception (a bare "Error" badge)."""
    TRIED["app: Upload handler"] += 1
    path = str(upload_files / video) if video else video
    try:
        out = handlers.generate(reference, path, steps, max_frames)
    except gradio_error():
        return
    assert Path(out[0]).is_file() and Path(out[0]).stat().st_size > 0 and out[1].ndim == 3
    if Path(out[0]).parent.name.startswith("turbonext-clip-"):  # the clip job's own temporary folder
        shutil.rmtree(Path(out[0]).parent)


@fuzz(40, heavy=True, deadline_s=20)
@given(reference=images_any, frames=st.lists(images_any, min_size=1, max_size=4))
@example(reference=np.full((64, 48, 3), 200, np.uint8), frames=[np.full((48, 64, 3), 100, np.uint8)])
def test_webcam_handlers(handlers, reference, frames):
    """The Webcam tab's handlers: a reference then frames of any kind give a result or a gr.Error."""
    TRIED["app: Webcam handlers"] += 1
    live = None
    try:
        try:
            live, seen, status = handlers.set_reference(reference, None)
        except gradio_error():
            return
        if live is None or live.runner is None:  # no photo, or one that cannot be used: the status says why
            assert isinstance(status, str) and status
            return
        assert seen.shape == (64, 64, 3)
        for frame in frames:
            try:
                handlers.stream(frame, live)
            except gradio_error():
                pass
    finally:
        if live is not None:
            live.close()
