"""Check that torch.compile of the streaming UNet gives the eager result (tiny random model, CPU or GPU).

    python examples/stream_compile_check.py [--mode default|reduce-overhead|max-autotune] [--device cuda]
"""

import argparse
import time

import numpy as np
import torch

from turbonext.pipelines.presets import build_random_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    pipe = build_random_pipeline("tiny", device=args.device)
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    poses = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(args.frames)]

    def run(mode):
        session = pipe.stream(reference_image=ref, generator=torch.Generator(args.device).manual_seed(0),
                              compile=mode, output_type="pt")
        start = time.perf_counter()
        frames = torch.stack([f for p in poses for f in session.step(p)])
        return frames, time.perf_counter() - start

    eager, t_eager = run(None)
    compiled, t_compiled = run(args.mode)
    print(f"eager {t_eager:.1f} s, compiled {t_compiled:.1f} s (including compilation), "
          f"max abs difference {(eager - compiled).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
