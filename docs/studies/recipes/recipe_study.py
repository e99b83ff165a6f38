"""Training recipes compared at equal CPU minutes: FID against minutes of training, one curve per arm.

Each arm trains a preset (`small` by default) from scratch for the same budget of training time (FID
checks pause the clock), same seed, with FID checks of the EMA model on the same starting noises
(DDIM, --fid-steps steps, seed + 1, --fid-images images), then a last check on those noises when the
budget runs out, sampled in --precision (auto: bf16 where the CPU has bf16 units, else fp32; the
study's own checks ran in bf16). Arms run --jobs at a time, each on one thread pinned to its own
core, so the arms of a batch share the machine alike; nothing else should run meanwhile.

    python docs/studies/recipes/recipe_study.py --minutes 30 --out runs/study        # trains every arm
    python docs/studies/recipes/recipe_study.py --out runs/study --report docs/studies/recipes/results/study
    python docs/studies/recipes/recipe_study.py --out runs/study4 --report PREFIX \
        --compare docs/studies/recipes/results/min-snr-study.json

Writes OUT/<arm>/ (a run folder each, with its study.log), and with --report PREFIX the table in
PREFIX-table.md, the curves in PREFIX-curves.png and the numbers in PREFIX-study.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from mnistdiff.files import read_csv

# Every arm names each lever, so that a change of the preset's defaults leaves the arms as they were.
PLAIN = ["--lr", "1e-3", "--lr-decay", "constant", "--min-snr-gamma", "0", "--level-density", "uniform",
         "--level-draw", "random", "--preconditioning", "none"]
COSINE = ["--lr-decay", "cosine", "--steps", "100000000"]  # the decay ends with the time budget
ARMS = {
    "constant": PLAIN,  # the `small` preset's recipe before this study
    "cosine": [*PLAIN, *COSINE],
    "cosine+min-snr-5": [*PLAIN, *COSINE, "--min-snr-gamma", "5"],  # the `small` preset's recipe after this study
    # ... and, with the doubled lr, since the 45-minute runs of docs/studies/efficiency/
    "cosine+min-snr-5+lr-2e-3": [*PLAIN, *COSINE, "--min-snr-gamma", "5", "--lr", "2e-3"],
    "cosine+min-snr-5+lr-3e-3": [*PLAIN, *COSINE, "--min-snr-gamma", "5", "--lr", "3e-3"],
    "cosine+min-snr-5+lr-2e-3+stratified": [*PLAIN, *COSINE, "--min-snr-gamma", "5", "--lr", "2e-3", "--level-draw",
                                            "stratified"],
    "cosine+min-snr-5+lr-2e-3+stratified+base-24": [*PLAIN, *COSINE, "--min-snr-gamma", "5", "--lr", "2e-3",
                                                    "--level-draw", "stratified", "--base", "24"],
    "cosine+min-snr-5+batch-128": [*PLAIN, *COSINE, "--min-snr-gamma", "5", "--batch-size", "128"],
    "cosine+lognormal": [*PLAIN, *COSINE, "--level-density", "lognormal"],
    "cosine+edm": [*PLAIN, *COSINE, "--preconditioning", "edm", "--level-density", "lognormal"],
    "cosine+edm-uniform": [*PLAIN, *COSINE, "--preconditioning", "edm"],
    "cosine+min-snr-5+base-24": [*PLAIN, *COSINE, "--min-snr-gamma", "5", "--base", "24"],  # narrower, faster
    "cosine+min-snr-5+blocks-2": [*PLAIN, *COSINE, "--min-snr-gamma", "5", "--blocks", "2"],  # deeper, slower
}
STUDY = ["constant", "cosine+edm", "cosine+min-snr-5", "cosine+lognormal", "cosine", "cosine+edm-uniform"]


def train_arms(out: Path, preset: str, minutes: float, fid_every: int, fid_images: int, fid_steps: int,
               arms: list[str], jobs: int, precision: str = "auto") -> None:
    """Train the arms `jobs` at a time, each on one thread pinned to its own core, so the arms of a
    batch share the machine alike; then each arm's last FID check on the noises of its in-training ones."""
    todo = [name for name in arms if not (out / name / "final-fid.json").is_file()]
    for first in range(0, len(todo), jobs):
        running = []
        for core, name in enumerate(todo[first : first + jobs]):
            run = out / name
            resume = ["--resume"] if (run / "checkpoints").is_dir() else []
            train = ["train", "--preset", preset, "--seed", "0", "--minutes", str(minutes), "--fid-every",
                     str(fid_every), "--fid-images", str(fid_images), "--fid-steps", str(fid_steps),
                     "--out", str(run), *resume, *ARMS[name]]
            check = ["fid", "--checkpoint", str(run), "--n", str(fid_images), "--seed", "1", "--steps",
                     str(fid_steps), "--precision", precision, "--json", str(run / "final-fid.json")]
            run.mkdir(parents=True, exist_ok=True)
            script = f"{mnistdiff(train)} && {mnistdiff(check)}"
            log = open(run / "study.log", "a")
            running.append(subprocess.Popen(["taskset", "-c", str(core % os.cpu_count()), "sh", "-c", script],
                                            env=os.environ | {"OMP_NUM_THREADS": "1"}, stdout=log, stderr=log))
        for proc in running:
            if proc.wait():
                sys.exit(f"an arm failed (exit {proc.returncode}); its study.log says why")


def mnistdiff(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in [sys.executable, "-m", "mnistdiff", *args])


def curve(run: Path) -> list[tuple[float, int, float]]:
    """(CPU minutes, step, FID) of each check of a run, the last one after its budget ran out."""
    points = [(float(r["elapsed_s"]) / 60, int(r["step"]), float(r["fid_test"])) for r in read_csv(run / "fid.csv")[1]]
    final = json.loads((run / "final-fid.json").read_text())
    last = read_csv(run / "log.csv")[1][-1]
    return points + [(float(last["elapsed_s"]) / 60, int(last["step"]), final["fid_test"])]


def report(out: Path, prefix: Path, arms: list[str], compare: list[Path] = ()) -> None:
    """Table, curves and JSON of the arms in `out`; the curves of `compare` (earlier studies' JSON, on
    the same noises) are drawn dashed beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix.parent.mkdir(parents=True, exist_ok=True)
    curves = {name: curve(out / name) for name in arms if (out / name / "final-fid.json").is_file()}
    floor = json.loads((out / next(iter(curves)) / "final-fid.json").read_text())["floor_fid_test"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=name)
    for path in compare:
        for name, points in json.loads(path.read_text())["curves"].items():
            ax.plot([p[0] for p in points], [p[2] for p in points], marker=".", linestyle="--",
                    label=f"{name} (earlier pair)")
    ax.axhline(floor, color="gray", linestyle="--", label="real images, same count")
    ax.set(xlabel="minutes of training (one core each)", ylabel="FID vs test statistics", yscale="log",
           title="Recipes at equal CPU time")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(f"{prefix}-curves.png")
    checks = max(len(points) for points in curves.values()) - 1
    head = " | ".join(f"FID, check {k + 1}" for k in range(checks))
    rows = [f"| arm | {head} | steps | minutes | final FID | / floor | precision | recall |",
            "|---" * (checks + 7) + "|"]
    for name, points in curves.items():
        minutes, step, fid = points[-1]
        final = json.loads((out / name / "final-fid.json").read_text())
        cells = [f"{f:.3f} ({m:.0f} min)" for m, _, f in points[:-1]]
        early = " | ".join(cells + ["-"] * (checks - len(cells)))  # an arm with fewer checks
        rows.append(f"| {name} | {early} | {step:,} | {minutes:.1f} | **{fid:.3f}** | {fid / floor:.1f}x "
                    f"| {final['precision']:.3f} | {final['recall']:.3f} |")
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
    p.add_argument("--fid-steps", type=int, default=20, help="DDIM steps of each FID check")
    p.add_argument("--arms", default=",".join(STUDY), help=f"comma list of {', '.join(ARMS)}")
    p.add_argument("--jobs", type=int, default=2, help="arms trained at once, one core and one thread each")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="autocast of each arm's last FID check (auto: bf16 where the CPU has bf16 units, else fp32)")
    p.add_argument("--report", type=Path, help="path prefix for the table, curves and JSON")
    p.add_argument("--compare", type=Path, action="append", default=[],
                   help="an earlier study's PREFIX-study.json (same noises) whose curves --report draws dashed")
    args = p.parse_args()
    arms = args.arms.split(",")
    unknown = set(arms) - set(ARMS)
    if unknown:
        p.error(f"unknown arms: {', '.join(sorted(unknown))}")
    if args.minutes:
        train_arms(args.out, args.preset, args.minutes, args.fid_every, args.fid_images, args.fid_steps, arms,
                   args.jobs, args.precision)
    if args.report:
        report(args.out, args.report, arms, args.compare)


if __name__ == "__main__":
    main()
