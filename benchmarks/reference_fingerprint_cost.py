"""What keeping the reference cache right costs per call: the weight fingerprints that tell when cached
ReferenceNet tokens or K/V went stale (turbonext.models.reference_attention.weights_fingerprint), on the
embedded demo and on SD1.5-size random weights, next to one demo clip call. Runs on any device (default: CPU).

    python benchmarks/reference_fingerprint_cost.py [--device cuda]
"""

import argparse
import time
import warnings

import torch

from turbonext import TurboNextPipeline
from turbonext.jobs.driving_inputs import synthetic_demo_inputs
from turbonext.models.reference_attention import ReferenceCache, weights_fingerprint
from turbonext.pipelines.presets import build_random_pipeline


def mean_ms(fn, repeats: int, device: torch.device) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats * 1000


def measure(name: str, device: torch.device) -> str:
    if name == "demo":
        pipe = TurboNextPipeline.from_pretrained("turbonext-demo").to(device)
    else:
        pipe = build_random_pipeline("full", device=device,
                                     torch_dtype=torch.float32 if device.type == "cpu" else torch.float16)
    pipe.set_progress_bar_config(disable=True)
    repeats = 3 if name == "full" else 10
    ref = mean_ms(pipe.reference_fingerprint, repeats, device)
    text = mean_ms(lambda: weights_fingerprint(pipe.text_encoder), repeats, device)
    kv = mean_ms(lambda: ReferenceCache.projection_fingerprint(pipe.unet), repeats, device)
    line = f"{name}: reference side {ref:.1f} ms, text encoder {text:.1f} ms, K/V projections {kv:.1f} ms"
    if name == "demo":
        demo = synthetic_demo_inputs(size=256, num_frames=8)
        call = mean_ms(lambda: pipe(reference_image=demo.reference, pose_images=demo.poses, num_inference_steps=4,
                                    output_type="np"), 3, device)
        line += f"; one 8-frame 4-step clip call {call:.0f} ms"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for name in ("demo", "full"):
        print(measure(name, torch.device(args.device)), flush=True)


if __name__ == "__main__":
    main()
