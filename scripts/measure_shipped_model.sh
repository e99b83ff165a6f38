#!/usr/bin/env bash
# Measure the shipped model: the numbers and pictures in the README come from this script.
# Usage: scripts/measure_shipped_model.sh [DDIM_IMAGES] [DDPM_IMAGES]   (defaults 10000 and 128)
# Needs MNIST (--data-dir through $MNISTDIFF_DATA, or the download cache) for the floor and recall.
set -euo pipefail
cd "$(dirname "$0")/.."
ddim_n=${1:-10000}
ddpm_n=${2:-128}
out=docs/results
mkdir -p "$out"
mnistdiff bench --preset small | tee "$out/bench-model-small.json"
mnistdiff plot-fid --out docs/fid-curve.png
mnistdiff sample --n 64 --out docs/samples-ddim50.png
mnistdiff bench sample --batch-size 64 --ddim-steps 50 --checkpoint src/mnistdiff/weights/small-mnist | tee "$out/bench-sample.json"
mnistdiff fid --sampler ddim --steps 50 --n "$ddim_n" --json "$out/fid-ddim50-$ddim_n.json" | tee "$out/fid-ddim50-$ddim_n.txt"
mnistdiff fid --sampler ddpm --n "$ddpm_n" --json "$out/fid-ddpm1000-$ddpm_n.json" | tee "$out/fid-ddpm1000-$ddpm_n.txt"
