#!/usr/bin/env bash
# Where should sampling stop? FID of the shipped model when DDIM and DPM-Solver++ jump to clean data
# (the x0 predicted there) from timestep t_end instead of running down to t = 0.
# Pick t_end on one set of starting noises (seed 0, 2000 images), then check the pick on new noises
# (seed 100000, 10,000 images) against the usual grids. Writes docs/studies/t-end/results/.
# Usage: docs/studies/t-end/t_end_study.sh [PICK_IMAGES] [CHECK_IMAGES] [CURVE_IMAGES] [PRECISION]
#        (defaults 2000 10000 1000 auto; auto is bf16 where the CPU has bf16 units, else fp32;
#        the study's results ran in bf16)
set -euo pipefail
cd "$(dirname "$0")/../../.."
pick_n=${1:-2000}
check_n=${2:-10000}
curve_n=${3:-1000}
precision=${4:-auto}
fast=(--precision "$precision" --compile)
out=docs/studies/t-end/results
mkdir -p "$out"
# 1. The sweep, on seed 0.
mnistdiff nfe-curve --n "$pick_n" --nfes 10 "${fast[@]}" --out "$out/pick-dpm10" --curves \
    dpm-solver:uniform,dpm-solver:uniform:0,dpm-solver:uniform:100,dpm-solver:uniform:150,dpm-solver:uniform:200,dpm-solver:uniform:250,dpm-solver:uniform:300
mnistdiff nfe-curve --n "$pick_n" --nfes 50 "${fast[@]}" --out "$out/pick-ddim50" --curves \
    ddim:uniform,ddim:uniform:100,ddim:uniform:200,ddim:uniform:300
# 2. The pick (t_end = 200) against the usual end, on new noises and more images.
for t_end in "" 200; do
    flag=(); name=""
    if [ -n "$t_end" ]; then flag=(--t-end "$t_end"); name="-t$t_end"; fi
    mnistdiff fid --sampler ddim --steps 50 --n "$check_n" --seed 100000 "${flag[@]}" "${fast[@]}" \
        --json "$out/check-ddim50$name.json" | tee "$out/check-ddim50$name.txt"
    mnistdiff fid --sampler dpm-solver --steps 10 --n "$check_n" --seed 100000 "${flag[@]}" "${fast[@]}" \
        --json "$out/check-dpm10$name.json" | tee "$out/check-dpm10$name.txt"
done
# 3. Quality per step with the pick.
mnistdiff nfe-curve --n "$curve_n" "${fast[@]}" --out "$out/nfe-curve-t200" \
    --curves ddim:uniform,ddim:uniform:200,dpm-solver:uniform,dpm-solver:uniform:200
# Pictures: the same noise, each end.
mnistdiff sample --n 64 "${fast[@]}" --out "$out/ddim50.png"
mnistdiff sample --n 64 --t-end 200 "${fast[@]}" --out "$out/ddim50-t200.png"
mnistdiff sample --n 64 --sampler dpm-solver --steps 10 --t-end 200 "${fast[@]}" --out "$out/dpm10-t200.png"
