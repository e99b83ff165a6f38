"""Few-step students against their teacher: FID beside the real-data floor, precision and recall at
each step count from the same noises, a batch's sampling time beside the teacher's DDIM-50 in the same
run, and the students' FID checks over their training minutes.

    python benchmarks/students.py [--students fast,runs/consistency,...] [--steps 1,2,4] [--n 2048]
        [--teacher-fid] [--curves runs/progressive,runs/consistency] [--out benchmarks/results/students]

A student is scored at each count of --steps up to the steps it was distilled for, with its own
sampler (generate() picks it from the student's config). --teacher-fid scores the teacher's DDIM-50
on the same noises too. --curves plots fid.csv of each run folder against training minutes; the
rounds of a progressive run (OUT/steps-N) join into one curve. Rows are kept in OUT.partial.jsonl as
they finish and reused by the same command. The data for the floor and recall: --data-dir, else
$MNISTDIFF_DATA, else the cache.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from mnistdiff import load_checkpoint
from mnistdiff.bench import bench_student
from mnistdiff.evaluation import evaluate
from mnistdiff.generation import generate
from mnistdiff.loading import find
from mnistdiff.precision import pick_device, pick_precision
from mnistdiff.provenance import git_commit
from mnistdiff.samplers.common import distilled_method, distilled_steps

TEACHER_STEPS = 50


def score(rows_done: dict, partial: Path, key: tuple, make) -> dict:
    """The row kept under `key`, or make() appended to the partial file."""
    if key in rows_done:
        return rows_done[key]
    row = make()
    with partial.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def scores(model, schedule, *, label: str, steps: int, n: int, seed: int, precision: str, dataset: str, data_dir,
           **sampling) -> dict:
    t0 = time.perf_counter()
    images = generate(model, schedule, n, steps=steps, seed=seed, precision=precision, progress=True, **sampling)
    seconds = time.perf_counter() - t0
    s = evaluate(images, dataset, data_dir, seed=seed)
    row = {"model": label, "steps": steps, "n": n, "seed": seed, "precision_mode": precision, "seconds": seconds,
           **{k: s[k] for k in ("fid_test", "floor_fid_test", "precision", "recall", "confident_share")}}
    print(f"{label} {steps} calls: FID {row['fid_test']:.3f} (floor {row['floor_fid_test']:.3f}), precision "
          f"{row['precision']:.3f}, recall {row['recall']:.3f}", file=sys.stderr, flush=True)
    return row


def curve(folder: Path) -> list[tuple[float, int, float]]:
    """(minutes, student steps, FID) of a run's fid.csv; a progressive run's rounds (steps-N, most steps
    first) follow one another in time."""
    rounds = sorted(folder.glob("steps-*"), key=lambda p: -int(p.name.split("-")[1])) or [folder]
    points, offset = [], 0.0
    for run in rounds:
        if not (run / "fid.csv").is_file():
            continue
        with (run / "fid.csv").open() as f:
            rows = list(csv.DictReader(f))
        points += [(offset + float(r["elapsed_s"]) / 60, int(r["ddim_steps"]), float(r["fid_test"])) for r in rows]
        log = run / "log.csv"  # the round's end: its last logged time, else its last check
        if log.is_file():
            with log.open() as f:
                last = list(csv.DictReader(f))[-1:]
            offset += float(last[0]["elapsed_s"]) / 60 if last else 0.0
        elif rows:
            offset = points[-1][0]
    return points


def plot(curves: dict[str, list], teacher_fid: float | None, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.3), dpi=120)
    for i, (label, points) in enumerate(curves.items()):
        if points:
            ax.plot([p[0] for p in points], [p[2] for p in points], marker="o", markersize=3, color=f"C{i}",
                    label=label)
            for minutes, steps, fid in points:
                ax.annotate(str(steps), (minutes, fid), fontsize=6, color=f"C{i}", xytext=(2, 2),
                            textcoords="offset points")
    if teacher_fid is not None:
        ax.axhline(teacher_fid, color="gray", linestyle="--", label=f"teacher, DDIM-{TEACHER_STEPS}")
    ax.set_yscale("log")
    ax.set_xlabel("training minutes (2 CPU cores; FID checks not counted)")
    ax.set_ylabel("FID vs test statistics")
    ax.set_title("Students' FID checks (the number: the steps sampled)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def to_markdown(record: dict) -> str:
    lines = [f"`{record['command']}` at {record['commit']}, {record['device']}, {record['precision']}, "
             f"{record['threads']} threads; {record['rows'][0]['n'] if record['rows'] else 0} images a row, "
             "the same noises for every row", "",
             "| model | calls | FID vs test | floor | FID / floor | precision | recall | p >= 0.9 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        lines.append(f"| {r['model']} | {r['steps']} | {r['fid_test']:.3f} | {r['floor_fid_test']:.3f} | "
                     f"{r['fid_test'] / r['floor_fid_test']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['confident_share']:.3f} |")
    for t in record["timing"]:
        lines += ["", f"Seconds for a batch of {t['batch_size']} ({t['model']}; median of {t['repeats']} turns):", "",
                  "| sampler | seconds | share of the teacher's |", "|---|---|---|",
                  f"| teacher, DDIM-{t['teacher_steps']} | {t['teacher_s']:.2f} | 1 |"]
        for steps, seconds in t["student_s"].items():
            lines.append(f"| student, {steps} call(s) | {seconds:.3f} | {seconds / t['teacher_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", default="fast", help="comma-separated students (default: the shipped one, fast)")
    p.add_argument("--steps", default="1,2,4", help="student step counts, comma-separated (default: 1,2,4)")
    p.add_argument("--teacher", help="the teacher (default: the shipped model)")
    p.add_argument("--teacher-fid", action="store_true", help=f"also score the teacher's DDIM-{TEACHER_STEPS}")
    p.add_argument("--n", type=int, default=2048, help="images a row (default: 2048)")
    p.add_argument("--timing-batch", type=int, default=64, help="the batch timed (0: no timing; default: 64)")
    p.add_argument("--repeats", type=int, default=4, help="timed turns (default: 4)")
    p.add_argument("--compile", action="store_true", help="time through torch.compile")
    p.add_argument("--curves", default="", help="comma-separated run folders whose fid.csv to plot")
    p.add_argument("--data-dir", help="folder with the IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", default="benchmarks/results/students", help="writes OUT.json, OUT.md (and OUT.png)")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    precision = pick_precision(args.precision, device.type)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.jsonl")
    kept = [json.loads(line) for line in partial.read_text().splitlines()] if partial.is_file() else []
    done = {(r["model"], r["steps"], r["n"], r["seed"], r["precision_mode"]): r for r in kept}
    teacher, schedule, config = load_checkpoint(args.teacher)
    teacher = teacher.to(device)
    common = {"n": args.n, "seed": args.seed, "precision": precision, "dataset": config["dataset"],
              "data_dir": args.data_dir}
    rows, timing, teacher_fid = [], [], None
    if args.teacher_fid:
        label = f"teacher, DDIM-{TEACHER_STEPS}"
        rows.append(score(done, partial, (label, TEACHER_STEPS, args.n, args.seed, precision),
                          lambda: scores(teacher, schedule, label=label, steps=TEACHER_STEPS, sampler="ddim",
                                         **common)))
        teacher_fid = rows[-1]["fid_test"]
    for name in args.students.split(","):
        student = load_checkpoint(name)[0].to(device)
        if not distilled_steps(student):
            p.error(f"{name} is not a distilled student (its config has no distilled_steps)")
        label = f"{name} ({distilled_method(student)}, {distilled_steps(student)}-step)"
        steps = [s for s in map(int, args.steps.split(",")) if s <= distilled_steps(student)]
        for s in steps:
            rows.append(score(done, partial, (label, s, args.n, args.seed, precision),
                              lambda s=s: scores(student, schedule, label=label, steps=s, **common)))
        if args.timing_batch:
            t = bench_student({s: student for s in steps}, teacher, schedule, teacher_steps=TEACHER_STEPS,
                              batch_size=args.timing_batch, seed=args.seed, precision=precision,
                              repeats=args.repeats, compile=args.compile)
            timing.append({"model": label, "repeats": args.repeats, **t})
    command = shlex.join(["python", "benchmarks/students.py", *(sys.argv[1:] if argv is None else argv)])
    record = {"command": command, "commit": git_commit(), "device": str(device), "precision": precision,
              "threads": torch.get_num_threads(), "teacher": str(find(args.teacher)), "rows": rows, "timing": timing}
    if args.curves:
        record["curves"] = {str(f): curve(Path(f)) for f in args.curves.split(",")}
        plot({f"{Path(f).name}": pts for f, pts in record["curves"].items()}, teacher_fid, out.with_suffix(".png"))
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(to_markdown(record))
    print(to_markdown(record))


if __name__ == "__main__":
    main()
