#!/usr/bin/env bash
# Measure the shipped model: the quality numbers and pictures in the README come from this script.
# Usage: scripts/measure_shipped_model.sh [DDIM_IMAGES] [DDPM_IMAGES] [NFE_IMAGES] [PRECISION]
#        (defaults 10000, 256, 1000, bf16; bf16 costs 0.7% of FID, see docs/results/precision-check/)
# Needs MNIST (--data-dir through $MNISTDIFF_DATA, or the download cache) for the floor and recall.
# Speed is measured separately, by benchmarks/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ddim_n=${1:-10000}
ddpm_n=${2:-256}
nfe_n=${3:-1000}
precision=${4:-bf16}
out=docs/results
mkdir -p "$out"
mnistdiff plot-fid --out docs/fid-curve.png
mnistdiff sample --n 64 --out docs/samples-ddim50.png
mnistdiff sample --sampler dpm-solver --steps 10 --n 64 --out docs/samples-dpm10.png
mnistdiff fid --sampler ddim --steps 50 --n "$ddim_n" --precision "$precision" \
    --json "$out/fid-ddim50-$ddim_n.json" | tee "$out/fid-ddim50-$ddim_n.txt"
mnistdiff fid --sampler ddpm --n "$ddpm_n" --precision "$precision" \
    --json "$out/fid-ddpm1000-$ddpm_n.json" | tee "$out/fid-ddpm1000-$ddpm_n.txt"
mnistdiff nfe-curve --n "$nfe_n" --precision "$precision" --out "$out/nfe-curve"
