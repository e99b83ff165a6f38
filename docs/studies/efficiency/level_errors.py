"""Where along the noise levels models differ: each model's eps MSE at a few levels t, on the same test
images and the same noises, as a markdown table (and JSON with --json).

    python docs/studies/efficiency/level_errors.py runs/a runs/b     # run folders or checkpoints
    python docs/studies/efficiency/level_errors.py shipped runs/a --json out.json

"shipped" names the model in the package. The loss is the plain eps MSE (no Min-SNR weights), under
--precision (auto: bf16 where the CPU has bf16 units, else fp32; the study's tables ran in bf16).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mnistdiff import load_checkpoint
from mnistdiff.data import load, to_model_range
from mnistdiff.diffusion import q_sample
from mnistdiff.precision import PRECISIONS, autocast, pick_precision

LEVELS = (10, 50, 150, 300, 500, 700, 850, 950, 999)


def level_errors(model, schedule, x0: torch.Tensor, levels=LEVELS, seed: int = 0,
                 precision: str = "auto") -> list[float]:
    """eps MSE of `model` at each level in `levels`, on x0 with noises drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    errors = []
    with torch.no_grad(), autocast(precision):
        for t in levels:
            eps = torch.randn(x0.shape, generator=gen)
            level = torch.full((len(x0),), t, dtype=torch.long)
            out = model(q_sample(schedule, x0, level, eps), level).float()
            errors.append((out - eps).pow(2).mean().item())
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="run folders or checkpoints; 'shipped' for the package's model")
    parser.add_argument("--n", type=int, default=256, help="test images (the first n)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noises")
    parser.add_argument("--data-dir", help="a folder with the four MNIST IDX files (default: as `mnistdiff` finds them)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="the models' autocast (auto: bf16 where the CPU has bf16 units, else fp32)")
    parser.add_argument("--json", type=Path, help="also write the errors here")
    args = parser.parse_args()

    images, _ = load("mnist", "test", args.data_dir)
    x0 = to_model_range(images[: args.n]).float()
    rows = {}
    for name in args.models:
        model, schedule, _ = load_checkpoint(None if name == "shipped" else name)
        rows[name] = level_errors(model, schedule, x0, seed=args.seed, precision=args.precision)
    print("| model | " + " | ".join(f"t = {t}" for t in LEVELS) + " |")
    print("|---" * (len(LEVELS) + 1) + "|")
    for name, errors in rows.items():
        print(f"| {name} | " + " | ".join(f"{e:.5f}" for e in errors) + " |")
    if args.json:
        args.json.write_text(json.dumps({"levels": LEVELS, "n": args.n, "seed": args.seed,
                                          "precision": pick_precision(args.precision), "errors": rows}, indent=1))


if __name__ == "__main__":
    main()
