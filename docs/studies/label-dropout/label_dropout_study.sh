#!/usr/bin/env bash
# What share of labels should a conditional fine-tune drop? Two continuations of the shipped conditional
# model (trained with 0.1) with its own recipe, equal in minutes and seed, that differ only in
# --label-dropout (0.1 and 0.2, the ends of the literature's range); the shipped model itself and each
# continuation are then scored by benchmarks/guidance.py at s = 1 and s = 2 (the default): the share
# read as the asked digit, FID, precision, recall. Writes docs/studies/label-dropout/results/.
# About 40 minutes on 2 CPU cores.
# Usage: docs/studies/label-dropout/label_dropout_study.sh [MINUTES] [IMAGES] [PRECISION]
#        (defaults 12 1024 auto; auto is bf16 where the CPU has bf16 units, else fp32). A run folder that
#        already has checkpoints is scored as it is: finish a killed one with `mnistdiff train --resume --out RUN`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
minutes=${1:-12}
images=${2:-1024}
precision=${3:-auto}
out=docs/studies/label-dropout/results
mkdir -p "$out"
score() {  # CHECKPOINT NAME
    python benchmarks/guidance.py --checkpoint "$1" --scales 1,2 --n "$images" --precision "$precision" \
        --compile --no-baseline --out "$out/$2"
}
score conditional start
for p in 0.1 0.2; do
    run=runs/label-dropout-$p
    if [ ! -d "$run/checkpoints" ]; then
        mnistdiff train --conditional --init-from src/mnistdiff/weights/conditional-mnist --lr 2e-4 --warmup 100 \
            --lr-decay cosine --min-snr-gamma 0 --level-density lognormal --level-mean 1 --level-std 1 \
            --level-uniform 0.3 --ema-decay 0.999 --label-dropout "$p" --seed 6 --precision "$precision" \
            --minutes "$minutes" --out "$run"
    fi
    score "$run" "dropout-${p/./}"
done
