#!/usr/bin/env bash
# One call of the device tool on a lent GPU machine, from the repo root:
#   run(command="scripts/gpu_session.sh check", carry=[".whl", ".gpudata"], timeout_s=540)
#   run(command="scripts/gpu_session.sh train 240 IMAGES_PER_S", carry=[".whl", ".gpudata"], timeout_s=540)
# (check takes about 7 minutes, bench 1.5, train SECONDS + 150 s). IMAGES_PER_S sets the step count:
# on an H100 a 200-step probe (check's small-512-log.csv) ran at 14,000, but a 100 s run averaged
# about 9,000 and was cut before its cosine decay ended (benchmarks/results/gpu-h100/); use ~9,000 there.
# Made here first (both git-ignored through .git/info/exclude):
#   .gpudata/  the four MNIST .gz files (cp ../shared/data/mnist/*.gz .gpudata/)
#   .whl/      diffusers 0.42.1, importlib_metadata 10.2.0 and lazy_importer 0.1.0 wheels
#              (pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl ...)
# The machine's image has torch as `python3` only; results go under $OUT, which the tool brings back.
set -uo pipefail
# Every part ends by this deadline, so the call ends inside the tool's limit (BUDGET_S + ~30 s of setup).
export DEADLINE=$(( $(date +%s) + ${BUDGET_S:-450} ))
what=${1:?usage: scripts/gpu_session.sh check | bench | train SECONDS IMAGES_PER_S}
mkdir -p /tmp/bin
printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > /tmp/bin/python  # a wrapper: a link breaks the venv
chmod +x /tmp/bin/python
export PATH=/tmp/bin:$PATH
python -c "import torch; assert torch.cuda.is_available()" || exit 4
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 3
export PYTHONPATH=$PWD/src:/tmp/site MNISTDIFF_DATA=$PWD/.gpudata PYTHONUNBUFFERED=1
case $what in
    check) scripts/gpu_check.sh "$OUT/check" 400 ;;
    bench) scripts/gpu_bench.sh "$OUT/bench" ;;
    train) scripts/gpu_train.sh "$OUT/train" "${2:?SECONDS}" "${3:?IMAGES_PER_S}" ;;
    *) echo "unknown: $what (check, bench or train)"; exit 2 ;;
esac
