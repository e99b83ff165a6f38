#!/usr/bin/env bash
# How much noise should DDIM add? FID of the shipped model with DDIM at 50, 100 and 200 steps for
# eta = 0 (deterministic, the DDIM paper's sigma = 0), 0.3, 0.6 and 1 (DDPM's posterior variance on the
# skipped grid), all from the same starting noises (seed 0); then the two best settings at 10,000 images.
# Writes docs/studies/eta/results/. About 40 minutes on 2 CPU cores with bf16 units.
# Usage: docs/studies/eta/eta_study.sh [SWEEP_IMAGES] [CHECK_IMAGES] [PRECISION]   (defaults 2048 10000 auto;
#        auto is bf16 where the CPU has bf16 units, else fp32; the study's results ran in bf16)
set -euo pipefail
cd "$(dirname "$0")/../../.."
sweep_n=${1:-2048}
check_n=${2:-10000}
precision=${3:-auto}
fast=(--precision "$precision" --compile)
out=docs/studies/eta/results
mkdir -p "$out"
fid() {  # NAME, then the sampler's flags
    local name=$1; shift
    mnistdiff fid --sampler ddim --seed 0 "${fast[@]}" "$@" --json "$out/$name.json" | tee "$out/$name.txt"
}
for steps in 50 100; do
    for eta in 0 0.3 0.6 1; do
        fid "ddim$steps-eta$eta" --steps "$steps" --eta "$eta" --n "$sweep_n"
    done
done
fid ddim200-eta1 --steps 200 --eta 1 --n "$sweep_n"
fid ddim50-tend200 --steps 50 --t-end 200 --n "$sweep_n"
fid "ddim100-eta1-n$check_n" --steps 100 --eta 1 --n "$check_n"
fid "ddim50-eta1-n$check_n" --steps 50 --eta 1 --n "$check_n"
