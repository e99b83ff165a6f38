"""Rewrite the README's results table from a report's summary.json.

    python scripts/readme_table.py report/summary.json [README.md]

Replaces what lies between the <!-- results:begin --> and <!-- results:end --> lines, so the
README's numbers are always those of one `mnistdiff report` run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mnistdiff.report.settings import REPORT_FID, REPORT_TIMING

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
SHOWN = ("DDPM-1000", "DDIM-50", "DDIM-10", "DDIM-100, eta 1", "DPM-Solver++ 10")


def table(summary: dict) -> str:
    prov = summary["provenance"]
    lines = [f"From `{prov['command']}` ({summary['settings']} counts; {prov['model']}, commit "
             f"{(prov['commit'] or 'unknown')[:7]}, {prov['machine']['device_name']}, "
             f"{prov['machine']['torch_threads']} torch thread(s), sampled under "
             f"{prov['settings'].get('precision', 'fp32')}"
             f"{' through torch.compile' if prov['settings'].get('compile') else ''}; image counts in the table):", "",
             "| sampler | images | FID (ours) | floor, same count | precision | recall | report's FID (Inception) |",
             "|---|---|---|---|---|---|---|"]
    for row in summary["fid"]:
        if row["label"] in SHOWN:
            lines.append(f"| {row['label']} | {row['n']} | {row['fid_test']:.3f} | {row['floor_fid_test']:.3f} | "
                         f"{row['precision']:.3f} | {row['recall']:.3f} | {_report_fid(row['label'])} |")
    t, r = summary["timing"], REPORT_TIMING
    merges = ", ".join(f"{m} {k} of {n}" for m, (k, n) in summary["two_plus_five_to_eight"].items())
    lines += ["", f"A batch of {t['batch_size']}: DDPM-1000 {t['ddpm_s']:.1f} s, DDIM-50 {t['ddim_s']:.2f} s "
              f"(ratio {t['ratio']:.1f}; the report: {r['ddpm_s']:.0f} s and {r['ddim_s']:.1f} s on a "
              f"{r['short_device']}, ratio {r['ddpm_s'] / r['ddim_s']:.1f}). "
              f"2 + 5 merges read as an 8: {merges}."]
    return "\n".join(lines)


def _report_fid(label: str) -> str:
    return f"{REPORT_FID[label]:.2f}" if label in REPORT_FID else "-"


def main() -> None:
    summary = json.loads(Path(sys.argv[1]).read_text())
    readme = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parent.parent / "README.md")
    text = readme.read_text()
    head, rest = text.split(BEGIN + "\n", 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + BEGIN + "\n" + table(summary) + "\n" + END + tail)
    print(f"rewrote the results table of {readme}")


if __name__ == "__main__":
    main()
