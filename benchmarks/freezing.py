"""Does inductor's weight freezing speed up the shipped model's denoiser? Prints img/s and share of peak.

    python benchmarks/freezing.py    # batch 64, plain torch.compile against compile with freezing, fp32 and bf16
"""

import torch

from mnistdiff.bench import gflops_per_image, matmul_gflops, median_seconds, shipped_model_and_batch
from mnistdiff.precision import autocast


def main() -> None:
    model, x, t = shipped_model_and_batch()
    gflop = gflops_per_image(model)
    peaks = {p: matmul_gflops(p) for p in ("fp32", "bf16")}
    print(f"matmul peak GFLOP/s: {peaks}; GFLOP per image: {gflop:.3f}", flush=True)
    for precision in ("fp32", "bf16"):
        for name, options in (("compile", {}), ("compile + freezing", {"freezing": True})):
            torch._dynamo.reset()
            compiled = torch.compile(model, options=options)

            def denoise():
                with torch.inference_mode(), autocast(precision, "cpu"):
                    compiled(x, t)

            per_s = 64 / median_seconds(denoise, 20, 3)
            print(f"{precision} {name}: {per_s:.0f} img/s, {100 * per_s * gflop / peaks[precision]:.1f}% of peak",
                  flush=True)


if __name__ == "__main__":
    main()
