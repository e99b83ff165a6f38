"""The compiled denoiser with the package's CPU GroupNorm (runtime.py) against torch's nn.GroupNorm.

    python docs/studies/denoiser-speed/groupnorm.py [--rounds 6] [--precision auto] [--layout channels-last] [--out FILE]

Both copies of the shipped model are compiled in one process and timed in alternating rounds
(batch 64, median of 8 calls per round), so that drift between processes does not enter the gap.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

import torch

from mnistdiff import keep_freed_memory
from mnistdiff.bench import median_seconds, shipped_model_and_batch
from mnistdiff.precision import PRECISIONS, autocast, pick_precision
from mnistdiff.provenance import git_commit
from mnistdiff.runtime import compile_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 where the CPU has bf16 units, else fp32")
    p.add_argument("--layout", default="channels-last", choices=["plain", "channels-last"])
    p.add_argument("--out", help="also write the rounds as JSON")
    args = p.parse_args()
    args.precision = pick_precision(args.precision)
    keep_freed_memory()  # as the CLI does
    ours, x, t = shipped_model_and_batch(args.layout)
    models = {"ours": compile_model(copy.deepcopy(ours)), "torch": torch.compile(ours)}
    ms = {name: [] for name in models}
    with torch.inference_mode(), autocast(args.precision, "cpu"):
        out = {name: model(x, t).float() for name, model in models.items()}  # builds both graphs
        difference = (out["ours"] - out["torch"]).abs().max().item()
        for _ in range(args.rounds):
            for name, model in models.items():
                ms[name].append(1e3 * median_seconds(lambda: model(x, t), 8, 2))
    medians = {name: statistics.median(v) for name, v in ms.items()}
    speedup = medians["torch"] / medians["ours"]
    print(f"{args.precision} {args.layout}, batch 64: ours {medians['ours']:.1f} ms, torch's GroupNorm "
          f"{medians['torch']:.1f} ms per call (medians of {args.rounds} rounds): {speedup:.2f}x; "
          f"largest output difference {difference:.1e}")
    if args.out:
        record = {"command": "python docs/studies/denoiser-speed/groupnorm.py " + " ".join(
                      f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
                  "commit": git_commit(), "threads": torch.get_num_threads(), "ms_per_call": ms,
                  "median_ms": medians, "speedup": speedup, "max_output_difference": difference}
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
