"""The report's tables as (headers, rows) of strings, written out as HTML or Markdown."""

from __future__ import annotations

from html import escape

from mnistdiff.experiments.merge_study import table as merge_table, third_digits
from mnistdiff.experiments.reconstruction import table as reconstruction_table
from mnistdiff.markdown import table as md_table
from mnistdiff.report.settings import FID_ROWS, REPORT_FID, REPORT_TIMING


def html_table(headers: list[str], rows: list[list[str]], theirs_last: bool = False) -> str:
    """A table; with theirs_last the last row (a published figure, not ours) is set apart."""
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"
    body = []
    for i, row in enumerate(rows):
        cls = ' class="theirs"' if theirs_last and i == len(rows) - 1 else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    return "<table>" + head + "".join(body) + "</table>"


def fid_table(results: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["sampler", "images", "FID vs test", "floor (real, same count)", "FID / floor", "FID vs train",
               "precision", "recall", "p >= 0.9", "seconds", "report (Inception FID)"]
    rows = []
    for label in [row.label for row in FID_ROWS]:
        r = results[f"fid {label}"]
        rows.append([r["label"], str(r["n"]), f"{r['fid_test']:.3f}", f"{r['floor_fid_test']:.3f}",
                     f"{r['fid_test'] / r['floor_fid_test']:.1f}x", f"{r['fid_train']:.3f}", f"{r['precision']:.3f}",
                     f"{r['recall']:.3f}", f"{r['confident_share']:.3f}", f"{r['seconds']:.0f}",
                     f"{REPORT_FID[label]:.2f}" if label in REPORT_FID else "-"])
    return headers, rows


def class_table(results: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["sampler"] + [str(c) for c in range(10)]
    rows = [results[f"fid {row.label}"] for row in FID_ROWS]
    return headers, [[r["label"]] + [f"{share:.1%}" for share in r["class_shares"]] for r in rows]


def timing_table(t: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["device", "batch", "precision", f"DDPM-{t['ddpm_steps']} (s)", "DDIM-50 (s)", "ratio"]
    r = REPORT_TIMING
    return headers, [[f"{t['device_name']} ({t['threads']} threads)" if t["device"] == "cpu" else t["device_name"],
                      str(t["batch_size"]), t["precision"] + (", compiled" if t.get("compile") else ""),
                      f"{t['ddpm_s']:.1f}", f"{t['ddim_s']:.2f}", f"{t['ratio']:.1f}"],
                     [f"the report: {r['device']}", str(r["batch"]), "not stated", f"{r['ddpm_s']:.0f}",
                      f"{r['ddim_s']:.1f}", f"{r['ddpm_s'] / r['ddim_s']:.1f}"]]


def merge_answer(study: dict) -> str:
    """The report's question in one sentence per method."""
    parts = [f"{name}: {m['counts']['2+5'][8]} of {sum(m['counts']['2+5'])}"
             for name, m in study["methods"].items()]
    return (f"Merges of a 2 with a 5 at weight {study['weight']:g}, read by the classifier as an 8 — "
            + "; ".join(parts) + f" ({study['per_class']} image pairs for each of the 45 class pairs).")


def markdown(results: dict) -> str:
    """Every table of the page in Markdown."""
    study = results["merge study"].get("study")
    if study is None or "skipped" in results["fid DDPM-1000"]:  # a model whose images the classifier cannot read
        return "\n".join(["# mnistdiff report", "", f"{results['fid DDPM-1000'].get('skipped', '')}", "",
                          "## Timing", "", md_table(*timing_table(results["timing"])),
                          "## Inversion", "", md_table(*reconstruction_table(results["reconstruction"]["rows"])), ""])
    return "\n".join([
        "# mnistdiff report", "", "## FID", "", md_table(*fid_table(results)), md_table(*class_table(results)),
        "## Timing", "", md_table(*timing_table(results["timing"])),
        "## Inversion", "", md_table(*reconstruction_table(results["reconstruction"]["rows"])),
        "## Merge study", "", merge_answer(study), "", md_table(*merge_table(study)),
        *[f"- {line}" for line in third_digits(study)], ""])
