"""Do the samplers rank the same under other feature networks than the shipped classifier?

    mnistdiff train-classifier --seed 1 --out runs/clf1
    python docs/studies/feature-check/feature_check.py runs/clf1 [--n N] [--out OUT] [--checkpoints RUN,RUN,...] [--npz A.npz,...]

Draws N images (default 2048) from the shipped model with each sampler below (seed 0, through
torch.compile, in bf16 where the CPU has bf16 units and fp32 elsewhere unless --precision says, the
report's noises), or with `--checkpoints` DDIM-50 images from each of those
models on the same noises (`--npz`: images already drawn, such as docs/studies/efficiency/level_swap.py --npz
keeps), and scores them against the MNIST test set in three feature spaces: the
shipped classifier's, a second classifier trained apart (another seed, so other weights), and an
untrained classifier's (random features, no notion of digits, rescaled to a mean spread of 1). Each
FID sits beside the floor of N real training images in the same space. Writes OUT/feature-check.json
and OUT/feature-check.md (OUT: docs/studies/feature-check/results by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mnistdiff import data, load_checkpoint
from mnistdiff.evaluation import Classifier, load_classifier
from mnistdiff.evaluation.metrics import features_and_probs, fid
from mnistdiff.evaluation.report import real_sample
from mnistdiff.experiments.inputs import load_array
from mnistdiff.generation import generate
from mnistdiff.precision import PRECISIONS

SAMPLERS = {  # label: generate()'s arguments
    "DDIM-50": {"sampler": "ddim", "steps": 50},
    "DDIM-50, eta 1": {"sampler": "ddim", "steps": 50, "eta": 1.0},
    "DDIM-100": {"sampler": "ddim", "steps": 100},
    "DDIM-100, eta 1": {"sampler": "ddim", "steps": 100, "eta": 1.0},
    "DPM-Solver++ 10": {"sampler": "dpm-solver", "steps": 10},
}


def feature_nets(second: Path) -> dict[str, Classifier]:
    torch.manual_seed(0)
    untrained = Classifier()
    return {"shipped classifier": load_classifier("mnist")[0], "second classifier": load_classifier("mnist", second)[0],
            "untrained network": untrained.eval()}


def image_sets(n: int, checkpoints: list[str], npz: list[str], precision: str = "auto") -> dict[str, torch.Tensor]:
    """The real floor's images, then each sampler's from the shipped model, DDIM-50's from each checkpoint,
    or the images in each .npz file."""
    sets = {"real training images (the floor)": real_sample(n)}
    if npz:
        for path in npz:
            images = torch.from_numpy(load_array(path, "images", (None, 1, 28, 28), np.uint8))
            if len(images) != n:
                raise SystemExit(f"{path}: {len(images)} images, where every row has --n {n}")
            sets[Path(path).stem] = images
        return sets
    if checkpoints:
        for path in checkpoints:
            print(f"sampling DDIM-50 from {path}", file=sys.stderr, flush=True)
            model, schedule, _ = load_checkpoint(path)
            sets[f"DDIM-50, {path}"] = generate(model, schedule, n, seed=0, precision=precision, compile=True,
                                                progress=True, **SAMPLERS["DDIM-50"])
        return sets
    model, schedule, _ = load_checkpoint()
    for label, args in SAMPLERS.items():
        print(f"sampling {label}", file=sys.stderr, flush=True)
        sets[label] = generate(model, schedule, n, seed=0, precision=precision, compile=True, progress=True,
                              **args)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("second", type=Path, help="the second classifier's folder (mnistdiff train-classifier --out)")
    parser.add_argument("--n", type=int, default=2048, help="images per row")
    parser.add_argument("--out", type=Path, default=Path("docs/studies/feature-check/results"))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoints", default="", help="comma-separated runs or checkpoints to compare")
    source.add_argument("--npz", default="", help="comma-separated .npz files of uint8 images (key 'images')")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="the samplers' autocast (auto: bf16 where the CPU has bf16 units, else fp32)")
    args = parser.parse_args()
    n, out, second = args.n, args.out, args.second
    out.mkdir(parents=True, exist_ok=True)
    nets = feature_nets(second)
    test_images, _ = data.load("mnist", "test")
    sets = image_sets(n, [c for c in args.checkpoints.split(",") if c], [f for f in args.npz.split(",") if f],
                      args.precision)
    with torch.no_grad():
        test_feats = {name: features_and_probs(net, test_images)[0] for name, net in nets.items()}
        # The untrained network's features are tiny: rescale them to a mean spread of 1 over the test set,
        # so that its FIDs read on a scale near the classifiers'. The trained ones are left as they are.
        scale = {name: 1.0 for name in nets} | {"untrained network": 1 / test_feats["untrained network"].std(0).mean().item()}
        rows = {label: {name: fid(features_and_probs(net, images)[0] * scale[name], test_feats[name] * scale[name])
                        for name, net in nets.items()}
                for label, images in sets.items()}
    (out / "feature-check.json").write_text(json.dumps({"n": n, "second_classifier": str(second), "fid_vs_test": rows},
                                                       indent=2) + "\n")
    names = list(nets)
    lines = [f"FID against the 10,000 test images, {n} images per row, in three feature spaces:", "",
             "| images | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(f"{r[name]:.3f}" for name in names) + " |" for label, r in rows.items()]
    (out / "feature-check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
