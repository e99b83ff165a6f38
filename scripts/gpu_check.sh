#!/usr/bin/env bash
# The GPU checks of issue 5, in one call on a machine with a CUDA GPU (run from the repo root):
#   1. the `seed` preset trains on the GPU, and a run stopped and resumed there ends where an
#      unbroken run ends (the GPU's dropout generator is saved with the checkpoint);
#   2. training speed of `small` at batch 512 (what scripts/gpu_train.sh then uses);
#   3. the benchmark suite on the GPU: bf16, torch.compile, an 8192 x 8192 matmul for the peak.
# Usage: scripts/gpu_check.sh OUT_DIR [BENCH_SECONDS]   (needs MNIST via $MNISTDIFF_DATA, diffusers)
# Every part runs under its own time limit, writes to files (no pipes that a leftover child could
# hold open) and logs its start and end in OUT_DIR/steps.txt, so a run cut short shows where its
# time went and keeps what it finished. Six files in all: log.txt, steps.txt, resume.json,
# small-512-log.csv, bench-cuda.json, bench-cuda.md.
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [BENCH_SECONDS]}
bench_s=${2:-240}
device=${DEVICE:-cuda} steps=${SEED_STEPS:-200} probe=${PROBE_STEPS:-200}  # smaller for a dry run on a CPU
half=$((steps / 2))
runs=$(mktemp -d)
mkdir -p "$out"
log=$out/log.txt

source "$(dirname "$0")/parts.sh"
train=(python -m mnistdiff train --device "$device" --sample-every 100000)

part gpu 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
part torch 60 python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
part seed-a 60 "${train[@]}" --preset seed --steps "$steps" --checkpoint-every "$half" --out "$runs/seed-a"
part seed-b 60 "${train[@]}" --preset seed --steps "$steps" --checkpoint-every "$half" --out "$runs/seed-b"
part seed-first-half 45 "${train[@]}" --preset seed --steps "$half" --checkpoint-every "$half" --out "$runs/seed-resumed"
part seed-resumed 45 "${train[@]}" --preset seed --steps "$steps" --checkpoint-every "$half" --out "$runs/seed-resumed" --resume
part compare 30 python - "$runs" "$out/resume.json" <<'PY'
import json, sys
from pathlib import Path
from mnistdiff.train import checkpoint

runs, dest = Path(sys.argv[1]), Path(sys.argv[2])
weights = {name: checkpoint.read(checkpoint.find(runs / name))[1]["model"]
           for name in ("seed-a", "seed-b", "seed-resumed")}

def rel(x, y):  # relative L2 distance over all weights
    num = sum((x[k].float() - y[k].float()).pow(2).sum() for k in x)
    return float((num / sum(x[k].float().pow(2).sum() for k in x)).sqrt())

result = {"unbroken_vs_unbroken": rel(weights["seed-a"], weights["seed-b"]),
          "unbroken_vs_resumed": rel(weights["seed-a"], weights["seed-resumed"]),
          "logs": {name: (runs / name / "log.csv").read_text() for name in weights}}
dest.write_text(json.dumps(result, indent=2) + "\n")
print({k: v for k, v in result.items() if k != "logs"})
PY
part small-512 60 "${train[@]}" --preset small --batch-size 512 --steps "$probe" --checkpoint-every 100000 --out "$runs/small-512"
cp "$runs/small-512/log.csv" "$out/small-512-log.csv"
part bench "$bench_s" python benchmarks/run.py --out "$out/bench-cuda" --presets small,seed --precisions bf16 \
    --compile --peak-size 8192 --repeats 20
cat "$out/steps.txt"
