#!/usr/bin/env bash
# The GPU checks of issue 5, in one call on a machine with a CUDA GPU (run from the repo root):
#   1. the `seed` preset trains on the GPU, and a run stopped and resumed there ends where an
#      unbroken run ends (the GPU's dropout generator is saved with the checkpoint);
#   2. training speed of `small` at batch 512 (what a GPU run of it would use);
#   3. the benchmark suite on the GPU: bf16, torch.compile, an 8192 x 8192 matmul for the peak.
# Usage: scripts/gpu_check.sh OUT_DIR [BENCH_SECONDS]   (needs MNIST via $MNISTDIFF_DATA, diffusers)
# Each part writes under OUT_DIR as it ends, so a run cut short keeps what it finished.
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [BENCH_SECONDS]}
bench_s=${2:-330}
device=${DEVICE:-cuda} steps=${SEED_STEPS:-200} probe=${PROBE_STEPS:-300}  # smaller for a dry run on a CPU
half=$((steps / 2))
runs=$(mktemp -d)
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$out/gpu.txt"

train() { python -m mnistdiff train --device "$device" --sample-every 100000 "$@" 2>&1 | tail -2; }
echo "== seed preset: unbroken, twice; stopped at $half and resumed"
train --preset seed --steps "$steps" --checkpoint-every "$half" --out "$runs/seed-a"
train --preset seed --steps "$steps" --checkpoint-every "$half" --out "$runs/seed-b"
train --preset seed --steps "$half" --checkpoint-every "$half" --out "$runs/seed-resumed"
train --preset seed --steps "$steps" --checkpoint-every "$half" --out "$runs/seed-resumed" --resume
python - "$runs" "$out/resume.json" <<'EOF'
import json, sys
from pathlib import Path
import torch
from mnistdiff.train import checkpoint

runs, dest = Path(sys.argv[1]), Path(sys.argv[2])
weights = {name: checkpoint.read(checkpoint.find(runs / name))[1]["model"]
           for name in ("seed-a", "seed-b", "seed-resumed")}

def rel(x, y):  # relative L2 distance over all weights
    num = sum((x[k].float() - y[k].float()).pow(2).sum() for k in x)
    return float((num / sum(x[k].float().pow(2).sum() for k in x)).sqrt())

first = weights["seed-a"]
result = {"unbroken_vs_unbroken": rel(first, weights["seed-b"]),
          "unbroken_vs_resumed": rel(first, weights["seed-resumed"]),
          "logs": {name: (runs / name / "log.csv").read_text() for name in weights}}
dest.write_text(json.dumps(result, indent=2) + "\n")
print({k: v for k, v in result.items() if k != "logs"})
EOF

echo "== small at batch 512, eager, $probe steps"
train --preset small --batch-size 512 --steps "$probe" --checkpoint-every 100000 --out "$runs/small-512"
cp "$runs/small-512/log.csv" "$out/small-512-log.csv"
tail -1 "$out/small-512-log.csv" | tee "$out/small-512-speed.txt"

echo "== benchmark suite (at most $bench_s s)"
timeout "$bench_s" python benchmarks/run.py --out "$out/bench-cuda" --presets small,seed --precisions bf16 \
    --compile --peak-size 8192 --repeats 20 2>&1 | grep -v "^\s*$" | tail -60
ls "$out"
