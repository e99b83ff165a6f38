#!/usr/bin/env bash
# Train the `small` preset on a CUDA GPU within a time budget, then measure it as issue 3's quality bar
# asks (10,000 DDIM-50 samples against the test statistics; DDPM-1000 on fewer).
# Usage: scripts/gpu_train.sh OUT_DIR TRAIN_SECONDS IMAGES_PER_S [BATCH] [LR]
#   IMAGES_PER_S: training speed at the same batch on that GPU (the last row of the small-512-log.csv
#   that scripts/gpu_check.sh writes); it sets the step count, so that the cosine decay ends when
#   the budget does.
# Needs about TRAIN_SECONDS + 150 s. Five files: log.txt, steps.txt, model.tgz (the exported EMA
# model with its training log, FID checks and last sample grid) and two JSON files of FID results.
set -uo pipefail
out=${1:?usage: scripts/gpu_train.sh OUT_DIR TRAIN_SECONDS IMAGES_PER_S [BATCH] [LR]}
seconds=${2:?} ips=${3:?} batch=${4:-512} lr=${5:-2e-3}
device=${DEVICE:-cuda} n_ddim=${N_DDIM:-10000} n_ddpm=${N_DDPM:-2000} n_check=${N_CHECK:-1000}  # smaller for a dry run
mkdir -p "$out"
log=$out/log.txt
source "$(dirname "$0")/parts.sh"
steps=${STEPS:-$(python -c "print(max(50, int(0.8 * $seconds * $ips / $batch) // 50 * 50))")}  # 0.8: checks, saves
every=$((steps / 5))
echo "small, batch $batch, lr $lr, min-SNR 5, cosine: $steps steps (at $ips img/s, budget $seconds s)" >> "$log"
run=$(mktemp -d)/small
part train $((seconds * 3 / 2)) python -m mnistdiff train --preset small --device "$device" --batch-size "$batch" \
    --lr "$lr" --min-snr-gamma 5 --lr-decay cosine --steps "$steps" --fid-every "$every" --fid-images "$n_check" \
    --checkpoint-every "$every" --sample-every "$steps" --out "$run"
part export 60 python -m mnistdiff export --checkpoint "$run" --out "$run/export"
cp "$run"/samples/*.png "$run/export/" 2>/dev/null
tar czf "$out/model.tgz" -C "$run" export
fid=(python -m mnistdiff fid --checkpoint "$run/export" --device "$device" --precision bf16)
part ddim50 90 "${fid[@]}" --n "$n_ddim" --batch-size 500 --json "$out/fid-ddim50.json"
part ddpm1000 120 "${fid[@]}" --sampler ddpm --n "$n_ddpm" --batch-size 1000 --json "$out/fid-ddpm1000.json"
cat "$out/steps.txt"
