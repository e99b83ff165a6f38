"""Quality per model call: each sampler at 5, 10, 20, 50 and 100 model evaluations, all from the same
noises, scored as `mnistdiff fid` scores (FID against the test statistics beside the real-data floor at
the same count, precision and recall), written as JSON, a Markdown table and a plot.

    python benchmarks/quality_per_call.py [--checkpoint RUN] [--n 2048] [--nfes 5,10,20,50,100]
        [--curves 'ddim uniform,heun trailing,...'] [--precision auto] [--out benchmarks/results/quality-per-call]

Budgets run in ascending order over every curve. Rows are kept in OUT.partial.jsonl as they finish;
rerunning the same command reuses them, and --kept-only writes the table from them alone.

Heun and EDM make 2n - 1 evaluations over n steps, so an even budget runs one fewer: the table gives
the evaluations that ran (samplers.steps_taken) beside the budget. Each curve is a sampler on a grid
with its options (CURVES); a budget a curve cannot take (DDPM's) is left out. The data for the floor
and recall: --data-dir, else $MNISTDIFF_DATA, else the cache.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mnistdiff import load_checkpoint
from mnistdiff.evaluation import evaluate
from mnistdiff.generation import generate
from mnistdiff.precision import pick_device, pick_precision
from mnistdiff.provenance import git_commit
from mnistdiff.samplers import steps_taken

# label -> (sampler, spacing, options): every curve names its grid, so a sampler's default may change
# and the rows kept stay what they were
CURVES = {
    "ddim uniform": ("ddim", "uniform", {}),
    "ddim trailing": ("ddim", "trailing", {}),
    "ddim uniform eta 1": ("ddim", "uniform", {"eta": 1.0}),
    "dpm-solver uniform": ("dpm-solver", "uniform", {}),
    "dpm-solver logsnr": ("dpm-solver", "logsnr", {}),
    "dpm-solver trailing": ("dpm-solver", "trailing", {}),
    "dpm-solver-sde logsnr": ("dpm-solver-sde", "logsnr", {}),
    "dpm-solver-sde trailing": ("dpm-solver-sde", "trailing", {}),
    "heun logsnr": ("heun", "logsnr", {}),
    "heun trailing": ("heun", "trailing", {}),
    "edm logsnr": ("edm", "logsnr", {}),
    "edm trailing": ("edm", "trailing", {}),
}
NFES = (5, 10, 20, 50, 100)


def measure(model, schedule, *, n: int, nfes=NFES, curves=tuple(CURVES), dataset: str = "mnist", data_dir=None,
            seed: int = 0, batch_size: int = 64, precision: str = "fp32", progress: bool = True,
            partial: Path | None = None, kept_only: bool = False) -> list[dict]:
    """One row per (curve, budget of model evaluations): the evaluations that ran and the scores. With
    `partial`, each row is appended to that JSON-lines file as it finishes, and rows already there (same
    curve, budget, n, seed and precision) are reused, so a killed run picks up where it stopped;
    `kept_only` gives those rows alone and computes nothing."""
    done = _read_partial(partial, n=n, seed=seed, precision=precision)
    rows = []
    for nfe in nfes:  # the cheap budgets of every curve first, so a run cut short still has them
        for label in curves:
            sampler, spacing, options = CURVES[label]
            if (label, nfe) in done:
                rows.append(done[label, nfe])
                continue
            if kept_only:
                continue
            t0 = time.perf_counter()
            images = generate(model, schedule, n, sampler=sampler, steps=nfe, spacing=spacing, seed=seed,
                              batch_size=batch_size, precision=precision, **options)
            seconds = time.perf_counter() - t0
            scores = evaluate(images, dataset, data_dir, seed=seed)
            rows.append({"curve": label, "sampler": sampler, "spacing": spacing,
                         "options": options, "nfe_budget": nfe, "nfe": steps_taken(sampler, nfe, schedule.T),
                         "n": n, "seconds": seconds, "fid_test": scores["fid_test"],
                         "floor_fid_test": scores["floor_fid_test"], "precision": scores["precision"],
                         "recall": scores["recall"], "seed": seed, "precision_mode": precision})
            if partial is not None:
                with partial.open("a") as f:
                    f.write(json.dumps(rows[-1]) + "\n")
            if progress:
                r = rows[-1]
                print(f"{label:>22} NFE {r['nfe']:>3}: FID {r['fid_test']:.3f} (floor {r['floor_fid_test']:.3f}), "
                      f"precision {r['precision']:.3f}, recall {r['recall']:.3f}, {seconds:.0f} s", flush=True)
    return rows


def _read_partial(path: Path | None, *, n: int, seed: int, precision: str) -> dict:
    if path is None or not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]
    return {(r["curve"], r["nfe_budget"]): r for r in rows
            if r["n"] == n and r.get("seed") == seed and r.get("precision_mode") == precision}


def to_markdown(rows: list[dict], command: str) -> str:
    """FID / floor by curve and budget, then every row with precision and recall."""
    budgets = sorted({r["nfe_budget"] for r in rows})
    curves = list(dict.fromkeys(r["curve"] for r in rows))
    cell = {(r["curve"], r["nfe_budget"]): r for r in rows}
    lines = [f"FID against the test statistics (classifier features) over the real-data floor at the same count, "
             f"{rows[0]['n']} images a cell, the same noises for every sampler; `{command}`", "",
             "| sampler, grid | " + " | ".join(f"NFE {k}" for k in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for c in curves:
        cells = [cell.get((c, k)) for k in budgets]
        lines.append(f"| {c} | " + " | ".join(_ratio(r) for r in cells) + " |")
    # each row's wall time stays in the JSON: a benchmark that shares the machine times nothing
    lines += ["", "| sampler, grid | NFE | FID vs test | floor | FID / floor | precision | recall |",
              "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (curves.index(r["curve"]), r["nfe"])):
        lines.append(f"| {r['curve']} | {r['nfe']} | {r['fid_test']:.3f} | {r['floor_fid_test']:.3f} | "
                     f"{r['fid_test'] / r['floor_fid_test']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} |")
    return "\n".join(lines) + "\n"


def _ratio(row: dict | None) -> str:
    if row is None:
        return ""
    evaluations = f" ({row['nfe']})" if row["nfe"] != row["nfe_budget"] else ""
    return f"{row['fid_test'] / row['floor_fid_test']:.2f}x{evaluations}"


def _kind(row: dict) -> str:
    return row["sampler"] + "".join(f" {k} {v:g}" for k, v in sorted(row["options"].items()))


def plot(rows: list[dict], out: Path) -> None:
    """FID against the evaluations that ran, one line per curve, log-log, with the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    # a colour per sampler (and its options), a line style per grid
    kinds = list(dict.fromkeys(_kind(r) for r in rows))
    styles = {"trailing": "-", "uniform": "--", "logsnr": ":", "quadratic": "-."}
    for c in dict.fromkeys(r["curve"] for r in rows):
        mine = [r for r in rows if r["curve"] == c]
        points = sorted((r["nfe"], r["fid_test"]) for r in mine)
        ax.plot(*zip(*points), marker="o", markersize=4, label=c, color=f"C{kinds.index(_kind(mine[0])) % 10}",
                linestyle=styles.get(mine[0]["spacing"], "-"))
    floor = sum(r["floor_fid_test"] for r in rows) / len(rows)  # the same real images in every row
    ax.axhline(floor, color="gray", linestyle="--", label="real images, same count")
    ax.set_xscale("log")
    ax.set_yscale("log")
    budgets = sorted({r["nfe_budget"] for r in rows})
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if max(r["fid_test"] for r in rows) > 100 * floor:  # a grid that fails at 5 calls would flatten the rest
        ax.set_ylim(0.8 * floor, 100 * floor)
        ax.text(0.99, 0.99, "cells above 100x the floor are off the plot", transform=ax.transAxes, ha="right",
                va="top", fontsize=7, color="gray")
    ax.set_xlabel("model evaluations")
    ax.set_ylabel(f"FID vs test statistics ({rows[0]['n']} images)")
    ax.set_title("Quality per model call")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="run or checkpoint folder (default: the shipped model)")
    p.add_argument("--n", type=int, default=2048, help="images a cell (default: 2048)")
    p.add_argument("--nfes", default=",".join(map(str, NFES)), help="budgets of model evaluations, comma-separated")
    p.add_argument("--curves", default=",".join(CURVES), help=f"comma-separated, from: {', '.join(CURVES)}")
    p.add_argument("--data-dir", help="folder with the IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--kept-only", action="store_true",
                   help="write the table from the rows OUT.partial.jsonl keeps, computing nothing")
    p.add_argument("--out", default="benchmarks/results/quality-per-call", help="writes OUT.json, OUT.md, OUT.png")
    args = p.parse_args(argv)
    curves = args.curves.split(",")
    unknown = [c for c in curves if c not in CURVES]
    if unknown:
        p.error(f"unknown curves {unknown}: choose from {', '.join(CURVES)}")
    device = pick_device(args.device)
    precision = pick_precision(args.precision, device.type)
    model, schedule, config = load_checkpoint(args.checkpoint)
    model = model.to(device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = measure(model, schedule, n=args.n, nfes=[int(k) for k in args.nfes.split(",")], curves=curves,
                   dataset=config["dataset"], data_dir=args.data_dir, seed=args.seed, batch_size=args.batch_size,
                   precision=precision, partial=out.with_suffix(".partial.jsonl"), kept_only=args.kept_only)
    command = (f"python benchmarks/quality_per_call.py --n {args.n} --nfes {args.nfes} --seed {args.seed} "
               f"--precision {args.precision}" + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
               + (f" --curves '{args.curves}'" if curves != list(CURVES) else ""))
    record = {"command": command, "commit": git_commit(), "device": str(device), "precision": precision,
              "threads": torch.get_num_threads(), "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(to_markdown(rows, command))
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out}.json, {out}.md and {out}.png")


if __name__ == "__main__":
    main()
