#!/usr/bin/env bash
# Train the `small` preset on a CUDA GPU within a time budget, then measure it as issue 3's quality bar
# asks (10,000 DDIM-50 samples against the test statistics; DDPM-1000 on fewer).
# Usage: scripts/gpu_train.sh OUT_DIR TRAIN_SECONDS PROBE_LOG [BATCH] [LR]
#   PROBE_LOG: a log.csv of a short run at the same batch (scripts/gpu_check.sh writes one); its last
#   images/s sets the step count, so that the cosine decay ends when the budget does.
set -uo pipefail
out=${1:?usage: scripts/gpu_train.sh OUT_DIR TRAIN_SECONDS PROBE_LOG [BATCH] [LR]}
seconds=${2:?} probe=${3:?} batch=${4:-512} lr=${5:-2e-3}
device=${DEVICE:-cuda} n_ddim=${N_DDIM:-10000} n_ddpm=${N_DDPM:-2000} n_check=${N_CHECK:-1000}  # smaller for a dry run on a CPU
ips=$(tail -1 "$probe" | cut -d, -f4)
steps=${STEPS:-$(python -c "print(max(50, int(0.8 * $seconds * $ips / $batch) // 50 * 50))")}  # 0.8: checks, saves
every=$((steps / 5))
echo "== small, batch $batch, lr $lr, min-SNR 5, cosine: $steps steps (probe: $ips img/s, budget $seconds s)"
run=$(mktemp -d)/small
mkdir -p "$out"
python -m mnistdiff train --preset small --device "$device" --batch-size "$batch" --lr "$lr" --min-snr-gamma 5 \
    --lr-decay cosine --steps "$steps" --fid-every "$every" --fid-images "$n_check" --checkpoint-every "$every" \
    --sample-every "$steps" --out "$run" 2>&1 | tr '\r' '\n' | grep -v '^train:' | tail -3
python -m mnistdiff export --checkpoint "$run" --out "$run/export"
cp "$run"/samples/*.png "$run/export/" 2>/dev/null
tar czf "$out/model.tgz" -C "$run" export
cat "$run/fid.csv"
fid() { python -m mnistdiff fid --checkpoint "$run/export" --device "$device" --precision bf16 "$@" 2>&1 \
        | tr '\r' '\n' | grep -v 'images:\s*[0-9]*%\|DDIM\|DDPM'; }
echo "== DDIM-50, $n_ddim images"; fid --n "$n_ddim" --batch-size 500 --json "$out/fid-ddim50.json"
echo "== DDIM-50 t_end 200"; fid --n "$n_ddim" --batch-size 500 --t-end 200 --json "$out/fid-ddim50-tend200.json"
echo "== DDPM-1000, $n_ddpm images"; fid --sampler ddpm --n "$n_ddpm" --batch-size 1000 --json "$out/fid-ddpm1000.json"
