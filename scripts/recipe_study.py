"""Training recipes compared at equal CPU minutes: FID against minutes of training, one curve per arm.

Each arm trains a preset (`small` by default) from scratch for the same wall-clock budget, same seed, with FID
checks of the EMA model on the same starting noises (DDIM-50, seed + 1, --fid-images images), then a
last check on those noises when the budget runs out. Run it on an otherwise idle machine: the arms
run one after another and their minutes are only comparable if nothing else shares the CPU.

    python scripts/recipe_study.py --minutes 40 --out runs/study          # trains every arm
    python scripts/recipe_study.py --out runs/study --report docs/training  # table + curves only

Writes OUT/<arm>/ (a run folder each), and with --report REPORT.md's table in REPORT-table.md,
the curves in REPORT-curves.png and the numbers in REPORT-study.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ARMS = {
    "default": [],
    "cosine": ["--lr-decay", "cosine", "--steps", "100000000"],
    "cosine+min-snr-5": ["--lr-decay", "cosine", "--steps", "100000000", "--min-snr-gamma", "5"],
    "cosine+min-snr-5+batch-128": ["--lr-decay", "cosine", "--steps", "100000000", "--min-snr-gamma", "5",
                                   "--batch-size", "128"],
}


def train_arms(out: Path, preset: str, minutes: float, fid_every: int, fid_images: int, arms: list[str]) -> None:
    for name in arms:
        run = out / name
        if (run / "final-fid.json").is_file():
            continue
        mnistdiff("train", "--preset", preset, "--seed", "0", "--minutes", str(minutes),
                  "--fid-every", str(fid_every), "--fid-images", str(fid_images), "--out", str(run), *ARMS[name])
        # The last check, on the noises of the in-training checks (seed 0 + 1, batches of 64).
        mnistdiff("fid", "--checkpoint", str(run), "--n", str(fid_images), "--seed", "1", "--steps", "50",
                  "--json", str(run / "final-fid.json"))


def mnistdiff(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mnistdiff", *args], check=True)


def curve(run: Path) -> list[tuple[float, int, float]]:
    """(CPU minutes, step, FID) of each check of a run, the last one after its budget ran out."""
    with open(run / "fid.csv") as f:
        points = [(float(r["elapsed_s"]) / 60, int(r["step"]), float(r["fid_test"])) for r in csv.DictReader(f)]
    final = json.loads((run / "final-fid.json").read_text())
    with open(run / "log.csv") as f:
        last = list(csv.DictReader(f))[-1]
    return points + [(float(last["elapsed_s"]) / 60, int(last["step"]), final["fid_test"])]


def report(out: Path, prefix: Path, arms: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix.parent.mkdir(parents=True, exist_ok=True)
    curves = {name: curve(out / name) for name in arms if (out / name / "final-fid.json").is_file()}
    floor = json.loads((out / next(iter(curves)) / "final-fid.json").read_text())["floor_fid_test"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=name)
    ax.axhline(floor, color="gray", linestyle="--", label="real images, same count")
    ax.set(xlabel="CPU minutes in optimizer steps", ylabel="FID vs test statistics", yscale="log",
           title="Recipes at equal CPU time")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(f"{prefix}-curves.png")
    rows = ["| arm | steps | CPU minutes | final FID | best FID | final / floor |", "|---|---|---|---|---|---|"]
    for name, points in curves.items():
        minutes, step, fid = points[-1]
        rows.append(f"| {name} | {step:,} | {minutes:.1f} | {fid:.3f} | {min(p[2] for p in points):.3f} "
                    f"| {fid / floor:.1f}x |")
    Path(f"{prefix}-table.md").write_text("\n".join(rows) + f"\n\nFloor (real images, same count): {floor:.3f}\n")
    Path(f"{prefix}-study.json").write_text(json.dumps({"floor": floor, "curves": curves}, indent=2) + "\n")
    print("\n".join(rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/study"), help="folder for the arms' run folders")
    p.add_argument("--preset", default="small", help="model shape (tiny: a smoke test of this script)")
    p.add_argument("--minutes", type=float, help="budget per arm; without it, no training, only --report")
    p.add_argument("--fid-every", type=int, default=1500, help="optimizer steps between FID checks")
    p.add_argument("--fid-images", type=int, default=2000, help="images per FID check")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {', '.join(ARMS)}")
    p.add_argument("--report", type=Path, help="path prefix for the table, curves and JSON")
    args = p.parse_args()
    arms = args.arms.split(",")
    unknown = set(arms) - set(ARMS)
    if unknown:
        p.error(f"unknown arms: {', '.join(sorted(unknown))}")
    if args.minutes:
        train_arms(args.out, args.preset, args.minutes, args.fid_every, args.fid_images, arms)
    if args.report:
        report(args.out, args.report, arms)


if __name__ == "__main__":
    main()
