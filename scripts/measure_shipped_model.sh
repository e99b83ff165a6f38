#!/usr/bin/env bash
# Measure the shipped model: the quality numbers and pictures in the README come from this script.
# Usage: scripts/measure_shipped_model.sh [DDIM_IMAGES] [DDPM_IMAGES] [NFE_IMAGES] [GRID_IMAGES] [PRECISION]
#        (defaults 10000, 512, 1000, 256, auto: bf16 where the CPU has bf16 units, else fp32;
#        bf16 costs 0.7% of FID, see docs/studies/precision-check/)
# Needs MNIST (--data-dir through $MNISTDIFF_DATA, or the download cache) for the floor and recall.
# The model runs through torch.compile (the same outputs, tests/test_fast_paths.py; 1.7x faster on CPU).
# Speed is measured separately, by benchmarks/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ddim_n=${1:-10000}
ddpm_n=${2:-512}
nfe_n=${3:-1000}
grid_n=${4:-256}
precision=${5:-auto}
fast=(--precision "$precision" --compile)
out=docs/results
mkdir -p "$out"
mnistdiff plot-fid --out docs/fid-curve.png
mnistdiff sample --n 64 --out docs/samples-ddim50.png
mnistdiff sample --sampler dpm-solver --steps 10 --n 64 --out docs/samples-dpm10.png
mnistdiff fid --sampler ddim --steps 50 --n "$ddim_n" "${fast[@]}" \
    --json "$out/fid-ddim50-$ddim_n.json" | tee "$out/fid-ddim50-$ddim_n.txt"
mnistdiff fid --sampler ddpm --steps 1000 --n "$ddpm_n" "${fast[@]}" \
    --json "$out/fid-ddpm1000-$ddpm_n.json" | tee "$out/fid-ddpm1000-$ddpm_n.txt"
# At a larger N: DPM-Solver++ at 10 evaluations on each grid against DDIM at 50.
mnistdiff nfe-curve --n 2000 --nfes 10 --curves dpm-solver:uniform,dpm-solver:logsnr,dpm-solver:quadratic \
    "${fast[@]}" --out "$out/dpm10-n2000"
mnistdiff nfe-curve --n 2000 --nfes 50 --curves ddim:uniform "${fast[@]}" --out "$out/ddim50-n2000"
mnistdiff nfe-curve --n "$nfe_n" --curves ddim:uniform,dpm-solver:logsnr,dpm-solver:uniform,dpm-solver:quadratic \
    "${fast[@]}" --out "$out/nfe-curve"
mnistdiff eval-grid --n "$grid_n" "${fast[@]}" --out "$out/eval-grid-$grid_n"
