"""Does inductor's weight freezing speed up the shipped model's denoiser? Prints img/s and share of peak.

    python docs/studies/denoiser-speed/freezing.py [--precision auto]

Batch 64, torch.compile with and without freezing, under --precision; auto: bf16 where the CPU has bf16 units, else fp32 (the study ran it with fp32 and with bf16).
"""

import argparse

import torch

from mnistdiff.bench import gflops_per_image, matmul_gflops, median_seconds, shipped_model_and_batch
from mnistdiff.precision import PRECISIONS, autocast, pick_precision


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 where the CPU has bf16 units, else fp32")
    precision = pick_precision(p.parse_args().precision)
    model, x, t = shipped_model_and_batch()
    gflop = gflops_per_image(model)
    peak = matmul_gflops(precision)
    print(f"{precision} matmul peak: {peak:.0f} GFLOP/s; GFLOP per image: {gflop:.3f}", flush=True)
    for name, options in (("compile", {}), ("compile + freezing", {"freezing": True})):
        torch._dynamo.reset()
        compiled = torch.compile(model, options=options)

        def denoise():
            with torch.inference_mode(), autocast(precision, "cpu"):
                compiled(x, t)

        per_s = 64 / median_seconds(denoise, 20, 3)
        print(f"{precision} {name}: {per_s:.0f} img/s, {100 * per_s * gflop / peak:.1f}% of peak",
              flush=True)


if __name__ == "__main__":
    main()
