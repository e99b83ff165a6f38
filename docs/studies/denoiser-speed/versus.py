"""Ours against diffusers' UNet2DModel of `small`'s size, timed in alternating rounds in one process.

    python docs/studies/denoiser-speed/versus.py [--rounds 6] [--precision auto] [--out FILE]

run.py times each row once, so the machine's drift (20% between minutes here) reaches its
ours / theirs ratios even with the two models timed back to back. Here each of several rounds
times a training step and a denoiser call of both models back to back (batch 64, median of
--repeats after warm-up), the ratio is taken within the round, and the figure is the median
over rounds. Uncompiled: compiled training is wrong on this backend (see mnistdiff.training.compiled).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from mnistdiff import bench, keep_freed_memory
from mnistdiff.model import UNet, get_preset
from mnistdiff.precision import PRECISIONS, pick_precision
from mnistdiff.provenance import git_commit

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))  # diffusers' UNet at small's shape, beside the suite
from diffusers_unet import DiffusersUNet  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 where the CPU has bf16 units, else fp32")
    p.add_argument("--out", help="also write the rounds as JSON")
    args = p.parse_args()
    args.precision = pick_precision(args.precision)
    keep_freed_memory()  # as the CLI does, for both models
    models = {"ours": UNet(get_preset("small").unet), "diffusers": DiffusersUNet()}
    rounds = []
    for k in range(args.rounds):
        speed = {name: bench.model_speed(model, precision=args.precision, repeats=args.repeats)
                 for name, model in models.items()}
        ratio = {job: speed["ours"][f"{job}_images_per_s"] / speed["diffusers"][f"{job}_images_per_s"]
                 for job in ("train", "denoiser")}
        rounds.append({"speed": speed, "ratio": ratio})
        print(f"round {k}: train {speed['ours']['train_images_per_s']:.0f} / "
              f"{speed['diffusers']['train_images_per_s']:.0f} img/s = {ratio['train']:.2f}x, denoiser "
              f"{speed['ours']['denoiser_images_per_s']:.0f} / {speed['diffusers']['denoiser_images_per_s']:.0f}"
              f" = {ratio['denoiser']:.2f}x", flush=True)
    median = {job: statistics.median(r["ratio"][job] for r in rounds) for job in ("train", "denoiser")}
    print(f"{args.precision}, batch 64, ours / diffusers over {args.rounds} rounds: training {median['train']:.2f}x "
          f"(min {min(r['ratio']['train'] for r in rounds):.2f}x), denoiser {median['denoiser']:.2f}x")
    if args.out:
        record = {"command": f"python docs/studies/denoiser-speed/versus.py --rounds {args.rounds} --repeats {args.repeats} "
                             f"--precision {args.precision}",
                  "commit": git_commit(), "threads": torch.get_num_threads(), "median_ratio": median, "rounds": rounds}
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
