"""Which noise levels a model's FID gap lives in: DDIM samples drawn with one model above a level and
another model below it, each split scored like `mnistdiff fid`, all on the same noises.

    python docs/studies/efficiency/level_swap.py shipped runs/a --splits 200,500,800 --n 2048 --json out.json [--npz DIR]

For each split s, "A above" draws with the first model while t >= s and with the second below s, and
"B above" the other way round; both models alone are drawn too. If replacing the weak model with
the strong one above s closes most of the gap, the weak model's deficit is in the levels above s.
"shipped" names the model in the package. Both models must share the noise schedule. With --npz,
each cell's images are kept as DIR/<cell>.npz (uint8, key 'images'), for scoring in other feature
spaces (docs/studies/feature-check/feature_check.py --npz). Sampled in --precision (auto: bf16
where the CPU has bf16 units, else fp32; the study's tables ran in bf16).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mnistdiff import load_checkpoint
from mnistdiff.evaluation import evaluate
from mnistdiff.generation import generate
from mnistdiff.images import save_npz
from mnistdiff.precision import PRECISIONS, pick_precision


class Split(torch.nn.Module):
    """eps from `high` at levels t >= split, from `low` below; every call's levels must be one level."""

    def __init__(self, high, low, split: int):
        super().__init__()
        self.high, self.low, self.split = high, low, split

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        level = int(t[0])
        if not bool((t == level).all()):
            raise ValueError("a split model needs one level per call")
        return (self.high if level >= self.split else self.low)(x, t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="first model: a run folder, checkpoint or 'shipped'")
    parser.add_argument("b", help="second model")
    parser.add_argument("--splits", default="200,500,800", help="levels to split at, comma-separated")
    parser.add_argument("--n", type=int, default=2048, help="images per cell")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the starting noises")
    parser.add_argument("--data-dir", help="a folder with the four MNIST IDX files (default: as `mnistdiff` finds them)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="the samplers' autocast (auto: bf16 where the CPU has bf16 units, else fp32)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--npz", type=Path, metavar="DIR", help="also keep each cell's images in this folder")
    args = parser.parse_args()

    a, schedule, _ = load_checkpoint(None if args.a == "shipped" else args.a)
    b, schedule_b, _ = load_checkpoint(None if args.b == "shipped" else args.b)
    if not torch.equal(schedule.alpha_bar, schedule_b.alpha_bar):
        raise SystemExit("the two models use different noise schedules")
    cells = [("A alone", a), ("B alone", b)]
    for split in (int(s) for s in args.splits.split(",")):
        cells += [(f"A above {split}, B below", Split(a, b, split)), (f"B above {split}, A below", Split(b, a, split))]
    rows = {}
    precision = pick_precision(args.precision)
    print(f"A: {args.a}   B: {args.b}   DDIM-{args.steps}, {args.n} images, seed {args.seed}, {precision}")
    print("| sampling model | FID vs test | precision | recall |\n|---|---|---|---|")
    for name, model in cells:
        images = generate(model, schedule, args.n, sampler="ddim", steps=args.steps, seed=args.seed,
                          precision=precision)
        if args.npz:
            save_npz(args.npz / (name.replace(" ", "-").replace(",", "") + ".npz"), images)
        result = evaluate(images, "mnist", args.data_dir, seed=args.seed)
        rows[name] = {k: result[k] for k in ("fid_test", "floor_fid_test", "precision", "recall")}
        print(f"| {name} | {result['fid_test']:.3f} | {result['precision']:.3f} | {result['recall']:.3f} |", flush=True)
    print(f"floor (real images, same count): {result['floor_fid_test']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"a": args.a, "b": args.b, "steps": args.steps, "n": args.n,
                                         "seed": args.seed, "precision": precision, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
