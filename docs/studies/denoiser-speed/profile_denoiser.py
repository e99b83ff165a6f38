"""Where the compiled denoiser's time goes: convolutions against everything else.

    python docs/studies/denoiser-speed/profile_denoiser.py [--precision auto] [--layout channels-last]

Profiles ten forward passes of the shipped model (batch 64, torch.compile) with torch.profiler and
prints the share of time in oneDNN convolutions, in inductor's generated kernels (normalisation,
SiLU, softmax and the other memory-bound work, fused) and in the rest.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from mnistdiff import keep_freed_memory
from mnistdiff.bench import shipped_model_and_batch
from mnistdiff.precision import PRECISIONS, autocast, pick_precision
from mnistdiff.runtime import compile_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 where the CPU has bf16 units, else fp32")
    p.add_argument("--layout", default="channels-last", choices=["plain", "channels-last"])
    args = p.parse_args()
    args.precision = pick_precision(args.precision)
    keep_freed_memory()  # as the CLI does
    model, x, t = shipped_model_and_batch(args.layout)
    compiled = compile_model(model)  # as the package compiles it
    with torch.inference_mode(), autocast(args.precision, "cpu"):
        for _ in range(3):
            compiled(x, t)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(10):
                compiled(x, t)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "convolution" in e.key)
    generated = sum(e.self_cpu_time_total for e in events if e.key.startswith("## Call CompiledFxGraph"))
    print(f"{args.precision} {args.layout}, batch 64, 10 forwards: {total / 1e4:.1f} ms each; "
          f"convolutions {conv / total:.0%}, inductor's generated kernels {generated / total:.0%}, "
          f"other {(total - conv - generated) / total:.0%}")


if __name__ == "__main__":
    main()
