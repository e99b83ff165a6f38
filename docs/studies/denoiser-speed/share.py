"""The denoiser's share of the matmul peak, measured in alternating rounds so that drift cancels.

    python docs/studies/denoiser-speed/share.py [--rounds 10] [--precision auto] [--layout channels-last] [--batch-size 64]
                               [--allocator keep|default] [--out FILE]

The peak (an n x n matmul) moves between runs by 20% here, more than the gaps we want to see. Each
round times the peak, then the shipped model's compiled denoiser, then the peak again,
and takes that round's share against the higher of its two peaks; the median over rounds is the
figure. The graph is built once, before the first round.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics

import torch

from mnistdiff import keep_freed_memory
from mnistdiff.bench import gflops_per_image, matmul_gflops, median_seconds, shipped_model_and_batch
from mnistdiff.precision import PRECISIONS, autocast, pick_precision
from mnistdiff.provenance import git_commit
from mnistdiff.runtime import compile_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 where the CPU has bf16 units, else fp32")
    p.add_argument("--layout", default="channels-last", choices=["plain", "channels-last"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--allocator", default="keep", choices=["keep", "default"],
                   help="keep: glibc keeps freed memory, as the CLI sets it; default: glibc as it comes")
    p.add_argument("--out", help="also write the rounds as JSON")
    args = p.parse_args()
    args.precision = pick_precision(args.precision)
    if args.allocator == "keep":
        keep_freed_memory()
    b = args.batch_size
    model, x, t = shipped_model_and_batch(args.layout, b)
    gflop = gflops_per_image(model)
    compiled = compile_model(model)  # as the package compiles it

    def denoise():
        with torch.inference_mode(), autocast(args.precision, "cpu"):
            compiled(x, t)

    denoise()  # builds the graph
    repeats, warmup = 20, 3
    rounds = []
    for k in range(args.rounds):
        before = matmul_gflops(args.precision)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        per_s = b / median_seconds(denoise, repeats, warmup)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (repeats + warmup)  # per call
        after = matmul_gflops(args.precision)
        share = per_s * gflop / max(before, after)
        rounds.append({"peak_before": before, "images_per_s": per_s, "peak_after": after, "share": share,
                       "page_faults_per_call": faults})
        print(f"round {k}: peak {before:.0f} / {after:.0f} GFLOP/s, denoiser {per_s:.0f} img/s = "
              f"{per_s * gflop:.0f} GFLOP/s, {share:.1%}, {faults:.0f} page faults per call", flush=True)
    median = statistics.median(r["share"] for r in rounds)
    print(f"{args.precision} {args.layout} compiled, batch {b}, allocator {args.allocator}: median share {median:.1%} "
          f"over {args.rounds} rounds (min {min(r['share'] for r in rounds):.1%}, max {max(r['share'] for r in rounds):.1%}), "
          f"{statistics.median(r['images_per_s'] for r in rounds):.0f} img/s")
    if args.out:
        command = (f"python docs/studies/denoiser-speed/share.py --rounds {args.rounds} --precision {args.precision} "
                   f"--layout {args.layout} --batch-size {b} --allocator {args.allocator}")
        record = {"command": command, "commit": git_commit(), "threads": torch.get_num_threads(),
                  "gflop_per_image": gflop, "median_share": median, "rounds": rounds}
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
