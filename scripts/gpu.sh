#!/usr/bin/env bash
# The GPU measurements, on a machine with a CUDA GPU and a CUDA build of torch (docs/gpu.md):
#
#   scripts/gpu.sh check  OUT          the `seed` preset trains on the GPU and resumes exactly; `small`
#                                      at batch 512; the benchmark suite with torch.compile (~7 min)
#   scripts/gpu.sh bench  OUT          uncompiled rows against diffusers' UNet2DModel, batch 64 and 512,
#                                      and compiled DDPM-1000 / DDIM-50 (~2 min)
#   scripts/gpu.sh train  OUT MINUTES [BATCH] [LR]
#                                      train `small` for MINUTES (cosine decay over the budget), export
#                                      it and run the --full report on it
#   scripts/gpu.sh continue OUT MINUTES [BATCH] [LR]
#                                      train the shipped model further for MINUTES (--init-from, plain
#                                      loss, cosine decay over the budget), export it with its history
#                                      and measure DDIM-50 at 10,000 images and DDPM-1000 at 2048
#   scripts/gpu.sh report OUT          `mnistdiff report --full` of the shipped model on the GPU
#
# Run from the repository root with the package installed (pip install -e '.[bench]' for diffusers)
# and MNIST reachable (MNISTDIFF_DATA: a folder with the four IDX files, or internet access).
# Every part runs under its own time limit (BUDGET_S, if set, caps the
# whole call) and logs its start, end and exit status to OUT/steps.txt; output goes to OUT/log.txt.
set -uo pipefail
what=${1:?usage: scripts/gpu.sh check|bench|train|continue|report OUT ...}
out=${2:?usage: scripts/gpu.sh $what OUT ...}
mkdir -p "$out"
log=$out/log.txt
device=${DEVICE:-cuda}  # DEVICE=cpu with small counts for a dry run
# PRECISION=auto (the default): bf16 where the device has bf16 units, else fp32
precision=$(python -c "from mnistdiff.precision import pick_precision; print(pick_precision('${PRECISION:-auto}', '${device%%:*}'))")
[ -n "${BUDGET_S:-}" ] && DEADLINE=$(( $(date +%s) + BUDGET_S ))
export PYTHONUNBUFFERED=1

# part NAME SECONDS COMMAND...: one part under a time limit, cut to what is left before DEADLINE.
part() {
    local name=$1 limit=$2
    shift 2
    if [ -n "${DEADLINE:-}" ]; then
        local left=$((DEADLINE - $(date +%s)))
        if [ "$left" -lt 10 ]; then echo "$(date +%T) skip $name: ${left} s left" >> "$out/steps.txt"; return; fi
        [ "$left" -lt "$limit" ] && limit=$left
    fi
    echo "$(date +%T) start $name (limit $limit s)" >> "$out/steps.txt"
    echo "== $name: $*" >> "$log"
    timeout -k 10 "$limit" "$@" >> "$log" 2>&1  # to a file, not a pipe a leftover child could hold open
    local rc=$?
    echo "$(date +%T) end $name: exit $rc$([ $rc = 124 ] && echo ' (time limit)')" >> "$out/steps.txt"
}

train=(python -m mnistdiff train --device "$device" --sample-every 100000)
suite=(python benchmarks/run.py --presets small --precisions "$precision" --sampling-precision "$precision" --peak-size 8192 --repeats 20)

check() {
    local steps=${SEED_STEPS:-200} runs
    local half=$((steps / 2))
    runs=$(mktemp -d)
    part gpu 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    part torch 60 python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
    for name in seed-a seed-b; do
        part "$name" 60 "${train[@]}" --preset seed --steps "$steps" --checkpoint-every "$half" --out "$runs/$name"
    done
    part seed-first-half 45 "${train[@]}" --preset seed --steps "$half" --checkpoint-every "$half" --out "$runs/seed-resumed"
    part seed-resumed 45 "${train[@]}" --preset seed --steps "$steps" --checkpoint-every "$half" --out "$runs/seed-resumed" --resume
    part compare 30 python - "$runs" "$out/resume.json" <<'PY'
import json, sys
from pathlib import Path
from mnistdiff import loading

runs, dest = Path(sys.argv[1]), Path(sys.argv[2])
weights = {n: loading.read(loading.find(runs / n))[1]["model"] for n in ("seed-a", "seed-b", "seed-resumed")}

def rel(x, y):  # relative L2 distance over all weights
    num = sum((x[k].float() - y[k].float()).pow(2).sum() for k in x)
    return float((num / sum(x[k].float().pow(2).sum() for k in x)).sqrt())

result = {"unbroken_vs_unbroken": rel(weights["seed-a"], weights["seed-b"]),
          "unbroken_vs_resumed": rel(weights["seed-a"], weights["seed-resumed"])}
dest.write_text(json.dumps(result, indent=2) + "\n")
print(result)
PY
    part small-512 60 "${train[@]}" --preset small --batch-size 512 --steps "${PROBE_STEPS:-200}" \
        --checkpoint-every 100000 --out "$runs/small-512"
    cp "$runs/small-512/log.csv" "$out/small-512-log.csv"
    part bench 240 python benchmarks/run.py --out "$out/bench-cuda" --presets small,seed --precisions "$precision" \
        --compile --peak-size 8192 --repeats 20
}

bench() {
    part plain 120 "${suite[@]}" --out "$out/bench-cuda-plain"
    part batch-512 60 "${suite[@]}" --out "$out/bench-cuda-512" --batch-size 512 --skip sampling
    part sampling-compiled 200 "${suite[@]}" --out "$out/bench-cuda-sampling-compile" --skip speed --compile
}

# --minutes decays the lr to 0 when the budget runs out (FID checks pause its clock).
train_small() {
    local minutes=${1:?MINUTES} batch=${2:-512} lr=${3:-2e-3} run limit every=${FID_EVERY:-2000}
    run=$(mktemp -d)/small
    limit=$(awk "BEGIN { print int($minutes * 90) + 120 }")  # the budget, its FID checks, start-up, saves
    part train "$limit" "${train[@]}" --preset small --batch-size "$batch" --lr "$lr" --min-snr-gamma 5 \
        --lr-decay cosine --steps 100000000 --minutes "$minutes" --fid-every "$every" \
        --fid-images "${FID_IMAGES:-1000}" --checkpoint-every "$every" --out "$run"
    part export 60 python -m mnistdiff export --checkpoint "$run" --out "$out/model"
    part report 1200 python -m mnistdiff report --full --checkpoint "$out/model" --device "$device" --out "$out/report"
}

# The shipped model's last stage used the plain loss: continued with Min-SNR-5 it got worse on the
# CPU, continued with the plain loss it gained (docs/studies/continuation/), so the continuation keeps it.
continue_shipped() {
    local minutes=${1:?MINUTES} batch=${2:-1024} lr=${3:-2e-3} run limit
    local base=src/mnistdiff/weights/small-mnist
    run=$(mktemp -d)/continued
    limit=$(awk "BEGIN { print int($minutes * 60) + 120 }")  # the budget, plus start-up and the last save
    part train "$limit" "${train[@]}" --init-from "$base" --batch-size "$batch" --lr "$lr" \
        --warmup 1000 --lr-decay cosine --min-snr-gamma 0 --ema-decay 0.9995 --skip-nonfinite 20 \
        --steps 100000000 --minutes "$minutes" --checkpoint-every 2000 --out "$run"
    part export 60 python -m mnistdiff export --checkpoint "$run" --out "$out/model" --base "$base"
    part ddim50 300 python -m mnistdiff fid --checkpoint "$out/model" --sampler ddim --steps 50 --n "${DDIM_N:-10000}" \
        --batch-size 1000 --device "$device" --precision "$precision" --json "$out/ddim50.json"
    part ddpm1000 300 python -m mnistdiff fid --checkpoint "$out/model" --sampler ddpm --n "${DDPM_N:-2048}" \
        --batch-size 2048 --device "$device" --precision "$precision" --json "$out/ddpm1000.json"
}

case $what in
    check) check ;;
    bench) bench ;;
    train) train_small "${@:3}" ;;
    continue) continue_shipped "${@:3}" ;;
    report) part report 3600 python -m mnistdiff report --full --device "$device" --out "$out/report" ;;
    *) echo "unknown: $what (check, bench, train, continue or report)"; exit 2 ;;
esac
cat "$out/steps.txt"
