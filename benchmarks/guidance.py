"""Classifier-free guidance on a conditional model: for each guidance scale s, the share of samples the
shipped classifier reads as the requested digit (per digit and overall), and the FID of the
class-balanced set (labels 0..9 in turn) beside the real-data floor, precision and recall, as
`mnistdiff fid` scores them; beside them the unconditional model on the same count and sampler.

    python benchmarks/guidance.py [--checkpoint conditional] [--scales 1,1.5,2,3,5] [--n 2048]
        [--large-n 10000 --large-scales 2] [--baseline SHIPPED | --no-baseline] [--sampler ddim --steps 50]
        [--precision auto] [--compile] [--out benchmarks/results/guidance]

Writes OUT.json, OUT.md and OUT.png (accuracy against FID over s). Rows are kept in OUT.partial.jsonl
as they finish; rerunning the same command reuses them, and --kept-only writes the table from them
alone. The data for the floor and recall: --data-dir, else $MNISTDIFF_DATA, else the cache.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mnistdiff import load_checkpoint
from mnistdiff.evaluation import evaluate
from mnistdiff.evaluation.report import worst_digit
from mnistdiff.generation import generate
from mnistdiff.precision import pick_device, pick_precision
from mnistdiff.provenance import git_commit

SCALES = (1.0, 1.5, 2.0, 3.0, 5.0)


def cells(scales, n: int, large_n: int, large_scales, baseline: bool = True) -> list[tuple[str, float | None, int]]:
    """(model, scale, images) in the order they run: every scale at n, the baseline at n, then the large counts."""
    out = [("conditional", s, n) for s in scales] + [("unconditional", None, n)] * baseline
    if large_n:
        out += [("conditional", s, large_n) for s in large_scales] + [("unconditional", None, large_n)] * baseline
    return out


def to_markdown(rows: list[dict], command: str) -> str:
    lines = [f"Class-balanced DDIM samples (labels 0..9 in turn) read by the shipped classifier, and their FID "
             f"against the test statistics beside the real-data floor at the same count; `{command}`", "",
             "| model | guidance s | images | read as requested | worst digit | FID vs test | floor | FID / floor "
             "| precision | recall | seconds |", "|---" * 11 + "|"]
    for r in rows:
        if r["scale"] is None:
            acc = worst = "-"
        else:
            acc = f"{r['accuracy']:.4f}"
            worst = "{}: {:.3f}".format(*worst_digit(r["accuracy_by_digit"]))
        scale = "-" if r["scale"] is None else f"{r['scale']:g}"
        lines.append(f"| {r['model']} | {scale} | {r['n']} | {acc} | {worst} | {r['fid_test']:.3f} | "
                     f"{r['floor_fid_test']:.3f} | {r['fid_test'] / r['floor_fid_test']:.2f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['seconds']:.0f} |")
    by_digit = [r for r in rows if r["scale"] is not None]
    if by_digit:
        digits = len(by_digit[0]["accuracy_by_digit"])
        lines += ["", "Read as requested, by digit:", "",
                  "| guidance s | images | " + " | ".join(str(c) for c in range(digits)) + " |",
                  "|---|---|" + "---|" * digits]
        for r in by_digit:
            lines.append(f"| {r['scale']:g} | {r['n']} | " + " | ".join(f"{a:.3f}" for a in r["accuracy_by_digit"])
                         + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], out: Path) -> None:
    """Accuracy against FID, one point per scale (the largest count each), the unconditional FID as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    n = min(r["n"] for r in rows)
    points = sorted((r["scale"], r["fid_test"], r["accuracy"]) for r in rows if r["scale"] is not None and r["n"] == n)
    if points:
        ax.plot([p[1] for p in points], [p[2] for p in points], marker="o")
        for s, fid, acc in points:
            ax.annotate(f"s = {s:g}", (fid, acc), textcoords="offset points", xytext=(5, -10), fontsize=8)
    for r in rows:
        if r["scale"] is None and r["n"] == n:
            ax.axvline(r["fid_test"], color="gray", linestyle="--", label="unconditional model, same count")
            ax.axvline(r["floor_fid_test"], color="gray", linestyle=":", label="real images, same count")
    ax.set_xlabel(f"FID vs test statistics ({n} images)")
    ax.set_ylabel("share read as the requested digit")
    ax.set_title("Classifier-free guidance: accuracy against FID")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="conditional", help="the conditional model (default: the shipped one)")
    p.add_argument("--baseline", help="the unconditional model beside it (default: the shipped model)")
    p.add_argument("--no-baseline", action="store_true", help="score the conditional model alone")
    p.add_argument("--scales", default=",".join(f"{s:g}" for s in SCALES), help="guidance scales, comma-separated")
    p.add_argument("--n", type=int, default=2048, help="images a scale (default: 2048)")
    p.add_argument("--large-n", type=int, default=0, help="images for --large-scales and the baseline (0: none)")
    p.add_argument("--large-scales", default="", help="scales also measured at --large-n, comma-separated")
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--data-dir", help="folder with the IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compile", action="store_true", help="torch.compile the models (rows kept without it are redone)")
    p.add_argument("--kept-only", action="store_true", help="write the table from the rows kept, computing nothing")
    p.add_argument("--out", default="benchmarks/results/guidance", help="writes OUT.json, OUT.md, OUT.png")
    args = p.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    large_scales = [float(s) for s in args.large_scales.split(",") if s]
    device = pick_device(args.device)
    precision = pick_precision(args.precision, device.type)
    models = {"conditional": load_checkpoint(args.checkpoint), "unconditional": load_checkpoint(args.baseline)}
    classes = models["conditional"][2]["unet"].get("classes", 0)
    if not classes:
        p.error(f"{args.checkpoint} is not a conditional model")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.jsonl")
    setting = {"sampler": args.sampler, "steps": args.steps, "seed": args.seed, "precision_mode": precision,
               "compile": args.compile}
    kept = [json.loads(line) for line in partial.read_text().splitlines()] if partial.exists() else []
    done = {(r["model"], r["scale"], r["n"]): r for r in kept
            if all(r.get(k, False if k == "compile" else None) == v for k, v in setting.items())}
    rows = []
    for name, scale, n in cells(scales, args.n, args.large_n, large_scales, baseline=not args.no_baseline):
        if (name, scale, n) in done:
            rows.append(done[name, scale, n])
            continue
        if args.kept_only:
            continue
        model, schedule, config = models[name]
        requested = torch.arange(n) % classes if scale is not None else None
        t0 = time.perf_counter()
        images = generate(model.to(device), schedule, n, sampler=args.sampler, steps=args.steps, seed=args.seed,
                          batch_size=args.batch_size, precision=precision, compile=args.compile,
                          **({"labels": list(range(classes)), "guidance": scale} if scale is not None else {}))
        seconds = time.perf_counter() - t0
        rows.append({"model": name, "scale": scale, "n": n, "seconds": seconds, **setting,
                     **evaluate(images, config["dataset"], args.data_dir, seed=args.seed, requested=requested)})
        with partial.open("a") as f:
            f.write(json.dumps(rows[-1]) + "\n")
        r = rows[-1]
        print(f"{name} s={scale} n={n}: " + (f"read as requested {r['accuracy']:.4f}, " if scale else "")
              + f"FID {r['fid_test']:.3f} (floor {r['floor_fid_test']:.3f}), {seconds:.0f} s", flush=True)
    command = (f"python benchmarks/guidance.py --scales {args.scales} --n {args.n} --sampler {args.sampler} "
               f"--steps {args.steps} --seed {args.seed} --precision {args.precision}"
               + (" --compile" if args.compile else "")
               + (f" --large-n {args.large_n} --large-scales {args.large_scales}" if args.large_n else "")
               + (f" --checkpoint {args.checkpoint}" if args.checkpoint != "conditional" else "")
               + (f" --baseline {args.baseline}" if args.baseline else "")
               + (" --no-baseline" if args.no_baseline else ""))
    record = {"command": command, "commit": git_commit(), "device": str(device), "precision": precision,
              "threads": torch.get_num_threads(), "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(to_markdown(rows, command))
    if rows:
        plot(rows, out.with_suffix(".png"))
    print(f"wrote {out}.json, {out}.md and {out}.png")


if __name__ == "__main__":
    main()
