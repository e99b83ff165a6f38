"""Denoiser images/s of several models on this machine, in alternating rounds so that they share
whatever else the machine is doing:

    python scripts/denoiser_speed.py src/mnistdiff/weights/small-mnist runs/deep3 [--json OUT]

Batch 64, bf16 autocast, level 500, uncompiled; 3 warm-up calls, then the median of 15 rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from mnistdiff import load_checkpoint
from mnistdiff.precision import autocast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="run folders, checkpoints or exported models")
    parser.add_argument("--rounds", type=int, default=15, help="timed calls per model")
    parser.add_argument("--json", type=Path, help="also write the speeds here")
    args = parser.parse_args()
    models = {path: load_checkpoint(path)[0].eval() for path in args.models}
    gen = torch.Generator().manual_seed(0)
    x, t = torch.randn(64, 1, 28, 28, generator=gen), torch.full((64,), 500)
    seconds = {path: [] for path in models}
    with torch.no_grad(), autocast("bf16"):
        for model in models.values():
            for _ in range(3):
                model(x, t)
        for _ in range(args.rounds):
            for path, model in models.items():
                start = time.perf_counter()
                model(x, t)
                seconds[path].append(time.perf_counter() - start)
    speeds = {path: round(len(x) / statistics.median(s), 1) for path, s in seconds.items()}
    print(json.dumps(speeds, indent=2))
    if args.json:
        args.json.write_text(json.dumps(speeds, indent=2) + "\n")


if __name__ == "__main__":
    main()
