"""Denoiser images/s of several trained models on this machine, in alternating rounds so that
they share whatever else the machine is doing:

    python docs/studies/continuation/denoiser_speed.py src/mnistdiff/weights/small-mnist runs/mine [--json OUT]

Batch 64, level 500, uncompiled, under --precision (auto: bf16 where the CPU has bf16 units, else fp32).
Each round times every model in turn (median of --repeats calls after one warm-up,
bench.median_seconds); a model's speed is the batch over the median of its rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from mnistdiff import bench, load_checkpoint
from mnistdiff.precision import PRECISIONS, autocast, pick_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="run folders, checkpoints or exported models")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all the models")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per model and round")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto: bf16 where the CPU has bf16 units, else fp32")
    parser.add_argument("--json", type=Path, help="also write the speeds here")
    args = parser.parse_args()
    models = {path: load_checkpoint(path)[0].eval() for path in args.models}
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.full((64,), 500)
    seconds = {path: [] for path in models}
    with torch.no_grad(), autocast(pick_precision(args.precision)):
        for _ in range(args.rounds):
            for path, model in models.items():
                seconds[path].append(bench.median_seconds(lambda: model(x, t), args.repeats, warmup=1))
    speeds = {path: round(len(x) / statistics.median(s), 1) for path, s in seconds.items()}
    print(json.dumps(speeds, indent=2))
    if args.json:
        args.json.write_text(json.dumps(speeds, indent=2) + "\n")


if __name__ == "__main__":
    main()
