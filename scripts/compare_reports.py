"""Two or more report folders side by side on one Markdown page, from their summary.json files:
FID and its floor by sampler, timing, reconstruction error, and 2 + 5 -> 8 by mixing rule.

    python scripts/compare_reports.py report-ours report-theirs --out compare.md

Each report must have been run with the same counts (--quick or --full) for its rows to compare.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mnistdiff.markdown import table as md_table


def compare(folders: list[Path]) -> str:
    """The Markdown page: one column per report folder."""
    summaries = [json.loads((Path(f) / "summary.json").read_text()) for f in folders]
    heads = [Path(f).name for f in folders]
    settings = {s["settings"] for s in summaries}
    if len(settings) > 1:
        raise ValueError(f"the reports ran with different counts ({', '.join(sorted(settings))}): rerun one of them")

    def rows(keys, cell):
        return [[str(key)] + [cell(s, key) for s in summaries] for key in keys]

    def fid(s, label):
        row = next((r for r in s["fid"] if r["label"] == label), None)
        return "left out" if row is None else f"{row['fid_test']:.3f} (floor {row['floor_fid_test']:.3f})"

    labels = list(dict.fromkeys(r["label"] for s in summaries for r in s["fid"]))
    steps = list(dict.fromkeys(k for s in summaries for k in s["reconstruction_mse"]))
    methods = list(dict.fromkeys(m for s in summaries for m in s["two_plus_five_to_eight"]))
    timing = ("ddpm_s", "ddim_s", "ratio")
    return "\n".join([
        f"# {' / '.join(heads)}", "", f"--{settings.pop()} counts; models:", "",
        *[f"- {head}: {s['provenance']['model']}" for head, s in zip(heads, summaries)], "",
        "## FID vs test (the floor: real images at the same count)", "",
        md_table(["sampler", *heads], rows(labels, fid)),
        "## Timing (seconds for one batch)", "",
        md_table(["", *heads], rows(timing, lambda s, k: f"{s['timing'][k]:.2f}")),
        "## Reconstruction error (per-pixel MSE on [0, 1]) by DDIM steps", "",
        md_table(["steps", *heads], rows(steps, lambda s, k: f"{s['reconstruction_mse'][k]:.2g}")),
        "## 2 + 5 -> 8 (merges read as an 8, of all)", "",
        md_table(["rule", *heads], rows(methods, lambda s, m: "{}/{}".format(*s["two_plus_five_to_eight"][m])
                                        if m in s["two_plus_five_to_eight"] else "left out")),
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="report folders (each holding summary.json)")
    parser.add_argument("--out", help="Markdown file to write (default: print)")
    args = parser.parse_args()
    page = compare([Path(f) for f in args.reports])
    if args.out:
        Path(args.out).write_text(page)
        print(f"wrote {args.out}")
    else:
        print(page)
