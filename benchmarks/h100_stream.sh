#!/usr/bin/env bash
# The owed H100 measurement of issue 3, split so that each part ends well inside the device tool's
# 10-minute limit per command. Run from the repository root ON THE GPU MACHINE (the `device` tool's
# `run`, with carry [".whl"]):
#
#   bash benchmarks/h100_stream.sh eager      # (a), (b), StreamSession eager: window 16 and 8, frames_per_level 4 2 1,
#                                             # staggered and uniform layouts (streaming/session.py)
#   bash benchmarks/h100_stream.sh graphs     # StreamSession with compile="reduce-overhead" (CUDA graphs)
#   bash benchmarks/h100_stream.sh lowlatency # CUDA graphs, 3 and 2 steps, windows 8 and 4: the <= 100 ms p95 target
#   bash benchmarks/h100_stream.sh layout     # CUDA graphs, window 16: the VAE in channels_last (a 34% decode gain on
#                                             # a CPU, turbonext.load_for_inference applies it there only) vs default, one run
#   bash benchmarks/h100_stream.sh arch       # the converted families' architectures (random weights, full size):
#                                             # RAIN's own layout (4 levels x 4 frames, window 16, staggered) and
#                                             # Moore-AnimateAnyone's in the uniform layout at 4 and 8 levels, eager
#   bash benchmarks/h100_stream.sh backbones  # turbonext on the other backbones (random weights, full size, eager,
#                                             # 4 steps, window 16, 4 frames per level, staggered and uniform, with
#                                             # baselines (a) and (b)): SD2.1 at 512 px, then SDXL at its native
#                                             # 1024 px with its motion adapter (fewer frames: one SDXL call over 16
#                                             # frames at 1024 px is ~20x an SD1.5 one at 512)
#
# Why a low-latency part: a frame is emitted num_inference_steps UNet calls after it enters, and a CUDA-graph
# UNet call is >= 27 ms even at 4 frames (anchors.md), so 4 steps cannot reach p95 <= 100 ms at any window;
# fewer steps (fewer noise levels) can, if their quality is acceptable.
#
# The GPU image has torch/transformers/peft/accelerate but not diffusers; fetch it HERE first (pure
# Python wheels; the folder must be ignored by git: echo /.whl/ >> .git/info/exclude):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       diffusers==0.42.1 importlib_metadata
#
# Results land in $OUT (JSON, the markdown tables, the log); append the tables to BENCHMARKS.md here.
set -euo pipefail
part="${1:?usage: h100_stream.sh eager|graphs|lowlatency|layout|arch|backbones}"
out="${OUT:-/tmp/turbonext-bench}"
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
case "$part" in
  eager)
    python3 -m turbonext bench stream --compile none --window 16 8 --frames-per-level 4 2 1 --schedule staggered uniform --profile 60 \
      --json "$out/stream_eager.json" --markdown "$out/BENCHMARKS_h100.md" 2>&1 | tee "$out/eager.log" ;;
  graphs)
    python3 -m turbonext bench stream --baselines --compile reduce-overhead --window 16 8 --frames-per-level 4 2 1 \
      --profile 60 --json "$out/stream_graphs.json" --markdown "$out/BENCHMARKS_h100.md" 2>&1 | tee "$out/graphs.log" ;;
  lowlatency)
    python3 -m turbonext bench stream --baselines --compile reduce-overhead --steps 3 2 --window 8 4 \
      --frames-per-level 2 1 --profile 60 --json "$out/stream_lowlatency.json" --markdown "$out/BENCHMARKS_h100.md" \
      2>&1 | tee "$out/lowlatency.log" ;;
  layout)
    for layout in "" --channels-last; do
      python3 -m turbonext bench stream --baselines --compile reduce-overhead --window 16 --frames-per-level 4 1 \
        --profile 60 $layout --json "$out/stream_layout${layout}.json" --markdown "$out/BENCHMARKS_h100.md" \
        2>&1 | tee -a "$out/layout.log"
    done ;;
  arch)
    python3 -m turbonext bench stream --arch rain --baselines b --compile none --steps 4 --window 16 \
      --frames-per-level 4 --schedule staggered --profile 60 --json "$out/stream_arch_rain.json" \
      --markdown "$out/BENCHMARKS_h100.md" 2>&1 | tee "$out/arch.log"
    python3 -m turbonext bench stream --arch animate-anyone --baselines --compile none --steps 4 8 --window 16 \
      --frames-per-level 8 4 --schedule uniform --json "$out/stream_arch_animate_anyone.json" \
      --markdown "$out/BENCHMARKS_h100.md" 2>&1 | tee -a "$out/arch.log" ;;
  backbones)
    python3 -m turbonext bench stream --arch sd21 --compile none --steps 4 --window 16 --frames-per-level 4 \
      --schedule staggered uniform --frames 96 --warmup 16 --json "$out/stream_backbone_sd21.json" \
      --markdown "$out/BENCHMARKS_h100.md" 2>&1 | tee "$out/backbones.log"
    python3 -m turbonext bench stream --arch sdxl --compile none --steps 4 --window 16 --frames-per-level 4 \
      --schedule staggered uniform --frames 32 --warmup 8 --fifo-frames 1 --json "$out/stream_backbone_sdxl.json" \
      --markdown "$out/BENCHMARKS_h100.md" 2>&1 | tee -a "$out/backbones.log" ;;
  *) echo "unknown part $part (eager|graphs|lowlatency|layout|arch|backbones)" >&2; exit 2 ;;
esac
