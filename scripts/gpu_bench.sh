#!/usr/bin/env bash
# The benchmark rows that scripts/gpu_check.sh's compile-heavy run leaves no time for, on a GPU:
#   1. small and diffusers' UNet2DModel in bf16, uncompiled, batch 64, and DDPM-1000 / DDIM-50 uncompiled;
#   2. the same throughput rows at batch 512 (batch 64 leaves a big GPU mostly idle);
#   3. DDPM-1000 / DDIM-50 through torch.compile.
# Usage: scripts/gpu_bench.sh OUT_DIR   (through scripts/gpu_session.sh bench; eight files at most)
set -uo pipefail
out=${1:?usage: scripts/gpu_bench.sh OUT_DIR}
mkdir -p "$out"
log=$out/log.txt
source "$(dirname "$0")/parts.sh"
run=(python benchmarks/run.py --presets small --precisions bf16 --peak-size 8192 --repeats 20)
part plain 120 "${run[@]}" --out "$out/bench-cuda-plain"
part batch-512 60 "${run[@]}" --out "$out/bench-cuda-512" --batch-size 512 --skip sampling
part sampling-compiled 200 "${run[@]}" --out "$out/bench-cuda-sampling-compile" --skip speed --compile
cat "$out/steps.txt"
