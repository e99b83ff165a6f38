"""A model whose weights are a weighted average of two models of the same shape (a "model soup"), as
a folder that load_checkpoint and every command read.

    python scripts/average_weights.py A B --weight 0.5 --out DIR

A and B are run folders, checkpoints or exported models ("shipped" names the model in the package);
the result holds weight * A + (1 - weight) * B of their EMA weights and B's config. Averaging two
stages of one model's training (one continued from the other, so both sit in one basin) is the
use it was written for. DIR gets a record.json naming both models and the weight.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnistdiff import files, loading
from mnistdiff.training import checkpoint


def average(a: Path, b: Path, weight: float, out: Path, names: tuple[str, str] | None = None) -> Path:
    """Write weight * a + (1 - weight) * b (EMA weights, in fp32, stored in b's dtypes) to `out`;
    `names`: how the record names a and b (default: their paths)."""
    _, wa = loading.read(a)
    _, wb = loading.read(b)
    if wa["ema"].keys() != wb["ema"].keys() or any(wa["ema"][k].shape != v.shape for k, v in wb["ema"].items()):
        raise ValueError(f"{a} and {b} differ in shape: only models of one shape can be averaged")
    mixed = {k: (weight * wa["ema"][k].float() + (1 - weight) * v.float()).to(v.dtype) for k, v in wb["ema"].items()}
    names = names or (str(a), str(b))
    record = {"average_of": [{"model": name, "weights_sha256": files.sha256(p / "weights.safetensors"),
                              "weight": w} for name, p, w in zip(names, (a, b), (weight, 1 - weight))]}
    return checkpoint.write_model(out, mixed, b / "config.json", record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="a run folder, checkpoint or exported model; 'shipped': the package's")
    parser.add_argument("b", help="the same for the second model; the result takes its config")
    parser.add_argument("--weight", type=float, default=0.5, help="A's share (default: %(default)s)")
    parser.add_argument("--out", required=True, help="folder for the averaged model")
    args = parser.parse_args()
    a, b = (loading.find(None if p == "shipped" else p) for p in (args.a, args.b))
    print(average(a, b, args.weight, Path(args.out), names=(args.a, args.b)))


if __name__ == "__main__":
    main()
