"""The real conversion path at full size, offline: random checkpoints in a family's own layout, converted with
`turbonext convert`, loaded with `TurboNextPipeline.from_pretrained`, and run once.

The checkpoint files are written from the key manifests derived from each source's model code
(tests/fixtures/converters/*_manifest.json), with random values (fp16 to spare disk; the real files are fp32).
The image encoder (CLIP ViT-L/14 shapes) and SD VAE are random too, saved in their Hub layouts. What it shows:
the full-size files map, the conversion's time and peak memory, the folder's size, and that the converted
pipeline loads and renders. It says nothing about picture quality (the weights are random).

    python benchmarks/convert_full_size_check.py rain --work /tmp/convert-check
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from turbonext.converters.build import SD_IMAGE_VARIATIONS_IMAGE_ENCODER
from turbonext.converters.sources import get_source
from turbonext.models.configs import SD15_VAE


FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "converters"
MANIFESTS = {"animate-anyone": "animate_anyone_manifest.json", "musepose": "musepose_manifest.json",
             "rain": "rain_manifest.json"}


def _position_table(shape) -> torch.Tensor:
    """The sinusoidal table the sources' motion modules register as a buffer (their files carry it)."""
    _, length, dim = shape
    position = torch.arange(length).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * (-np.log(10000.0) / dim))
    table = torch.zeros(1, length, dim)
    table[0, :, 0::2], table[0, :, 1::2] = torch.sin(position * div), torch.cos(position * div)
    return table


def write_sources(name: str, work: Path) -> Path:
    source = get_source(name)
    manifest = json.loads((FIXTURES / MANIFESTS[name]).read_text())
    src = work / "src"
    generator = torch.Generator().manual_seed(0)
    for role, path in source.file_paths().items():
        target = src / path
        target.parent.mkdir(parents=True, exist_ok=True)
        state = {k: (_position_table(shape) if k.endswith("pos_encoder.pe") else
                     torch.randn(shape, generator=generator) * 0.02).half()
                 for k, shape in manifest["files"][Path(path).name].items()}
        torch.save(state, target)
        print(f"wrote {target} ({target.stat().st_size / 2**30:.2f} GiB, {len(state)} tensors)", flush=True)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**SD_IMAGE_VARIATIONS_IMAGE_ENCODER))
    encoder.save_pretrained(work / "image-variations" / "image_encoder")
    AutoencoderKL(**SD15_VAE).save_pretrained(work / "sd-vae")
    return src


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(MANIFESTS))
    parser.add_argument("--work", default="/tmp/convert-check")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(args.work) / args.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = write_sources(args.name, work)
    out = work / "converted"
    start = time.perf_counter()
    command = [sys.executable, "-m", "turbonext", "convert", args.name, str(src), str(out), "--image-encoder",
               str(work / "image-variations"), "--vae", str(work / "sd-vae"), "--dtype", "fp16"]
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**30 if out.exists() else 0
    print(f"convert: exit {done.returncode}, {seconds:.0f} s, peak RSS {peak:.1f} GiB, folder {size:.2f} GiB")
    if done.returncode:
        return done.returncode
    from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline

    pipe = TurboNextPipeline.from_pretrained(out, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    poses = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    start = time.perf_counter()
    frames = pipe(reference_image=ref, pose_images=poses, num_inference_steps=1, output_type="np").frames[0]
    print(f"loaded and rendered {frames.shape} at 64x64, 1 step, in {time.perf_counter() - start:.1f} s; "
          f"finite: {bool(np.isfinite(frames).all())}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
