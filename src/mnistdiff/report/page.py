"""The report's page: index.html (plain HTML and CSS, relative links), summary.json and report.md."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from html import escape
from importlib import metadata
from pathlib import Path

import torch

from mnistdiff.experiments.merge_study import third_digits
from mnistdiff.files import atomic_write
from mnistdiff.report import tables
from mnistdiff.report import conditional, student
from mnistdiff.report.settings import FID_ROWS, HEADLINE, REPORT_FID, REPORT_TIMING, Settings

PACKAGES = ("mnistdiff", "torch", "numpy", "torchmetrics", "safetensors", "pillow", "matplotlib")
CSS = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.theirs td { color: #666; font-style: italic; }
figure { display: inline-block; margin: 0.5rem 1rem 0.5rem 0; vertical-align: top; }
figcaption { font-size: 0.85rem; color: #444; max-width: 40rem; }
img { image-rendering: pixelated; max-width: 100%; }
.note { background: #f5f5ee; border-left: 4px solid #cc9; padding: 0.5rem 1rem; }
pre { background: #f4f4f4; padding: 0.5rem; overflow-x: auto; font-size: 0.8rem; }
.defs { font-size: 0.8rem; color: #555; max-width: 60rem; }
"""


def provenance(settings: Settings, *, checkpoint, folder: Path, checksum: str, device: torch.device,
               command: str | None, data_dir: str | None, results: dict, commit: str | None,
               conditional_checkpoint=None, student_checkpoint=None) -> dict:
    """What reruns every number: commands, versions, commit, machine, seeds and counts;
    conditional_checkpoint and student_checkpoint: the models of those sections, where they have one."""
    from mnistdiff.provenance import machine_details

    return {
        "command": command or "build_report(...) from Python",
        "commands": _rerun_commands(settings, checkpoint, device, data_dir, results)
                    | conditional.rerun_command(settings, checkpoint, conditional_checkpoint, device, data_dir)
                    | student.rerun_command(settings, checkpoint, student_checkpoint, device, data_dir),
        "settings": asdict(settings),
        "model": str(folder) if checkpoint is not None else "the shipped model",
        "weights_sha256": checksum,
        "commit": commit,
        "versions": _versions(),
        "machine": machine_details(device),
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _versions() -> dict[str, str]:
    """The version of each package the numbers depend on, and Python's."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions | {"python": platform.python_version()}


def _rerun_commands(s: Settings, checkpoint, device: torch.device, data_dir: str | None,
                    results: dict) -> dict[str, str]:
    """One `mnistdiff` command line per part of the page, with the report's counts and seeds."""
    model = [] if checkpoint is None else ["--checkpoint", str(checkpoint)]
    where = [] if data_dir is None else ["--data-dir", data_dir]
    on = ["--device", device.type, *(["--compile"] if s.compile else [])]
    commands = {f"FID {r.label}": ["fid", "--sampler", r.sampler,
                                   *([] if r.steps is None else ["--steps", str(r.steps)]),
                                   *([] if r.eta is None else ["--eta", f"{r.eta:g}"]),
                                   "--n", str(s.images_of(r.label)),
                                   "--seed", str(s.seed), "--batch-size", str(s.batch_size), "--precision",
                                   s.precision, *model, *on, *where]
                for r in FID_ROWS}
    merges = results["merges"]
    commands |= {
        "timing": ["bench", "sample", "--batch-size", str(s.timing_batch), "--precision", s.precision, *model, *on],
        "Fig. 1": ["figure", "forward", str(results["forward"]["test_index"]), "--steps", str(s.ddim_steps), *model,
                   *where],
        "denoising GIF": ["figure", "trajectory", "--n", str(s.trajectory_images), "--seed", str(s.seed), *model],
        "reconstruction": ["reconstruction", "--n", str(s.reconstruction_images), "--steps",
                           ",".join(map(str, s.reconstruction_steps)), *model, *where],
        **{f"merge, {rule}": ["merge", str(merges["a"]), str(merges["b"]), "--rule", rule, *model, *where]
           for rule in merges["rules"]},
        "merge study": ["merge-study", "--per-class", str(s.merge_per_class), "--seed", str(s.seed), *model, *where],
    }
    return {k: shlex.join(["mnistdiff", *v]) for k, v in commands.items()}


def _conditional(results: dict) -> list[str]:
    section = results["conditional"]
    html = [f"<h2>{escape(tables.CONDITIONAL_TITLE)}</h2>"]
    if not section["available"]:
        return html + [f'<p class="note">{escape(section["note"])}</p>']
    return html + [
        f"<p>{escape(tables.conditional_intro(section))} Guidance pushes each image towards its label; past some "
        "scale the digits get bolder and alike, which FID and recall see.</p>",
        _figure("conditional-grid.png", f"One row per digit 0 to {section['classes'] - 1}, guidance "
                f"s = {section['default_guidance']:g}.", "conditional samples, one row per digit"),
        tables.html_table(*tables.guidance_table(section)),
        tables.html_definitions(tables.GUIDANCE_COLUMNS),
    ]


def _student(results: dict) -> list[str]:
    section = results["student"]
    html = [f"<h2>{escape(tables.STUDENT_TITLE)}</h2>"]
    if not section["available"]:
        return html + [f'<p class="note">{escape(section["note"])}</p>']
    return html + [
        f"<p>{escape(tables.student_intro(section))}</p>",
        _figure("student-grid.png", f"{section['grid_steps']} call(s) of the student.", "student samples"),
        tables.html_table(*tables.student_table(section, results)),
        tables.html_definitions(tables.STUDENT_COLUMNS),
    ]


def _figure(src: str, caption: str, alt: str) -> str:
    return f'<figure><img src="{escape(src)}" alt="{escape(alt)}"><figcaption>{caption}</figcaption></figure>'


def _figures(results: dict, s: Settings) -> list[str]:
    fwd, traj = results["forward"], results["trajectory"]
    ddpm = results["fid DDPM-1000"]
    return [
        "<h2>Figures</h2>",
        _figure("forward.png", f"Fig. 1. The forward process of test image #{fwd['test_index']} and the "
                f"deterministic DDIM-{s.ddim_steps} path back from its inverted latent.", "forward process"),
        "<br>",
        _figure("samples-ddpm.png", f"Fig. 2a. DDPM-{ddpm['steps']}, {ddpm['grid_images']} images.", "DDPM samples"),
        _figure("samples-ddim.png", "Fig. 2b. DDIM-50 (eta = 0) from the same starting noise.", "DDIM samples"),
        _figure("denoising.gif", f"Denoising of {traj['images']} images over DDIM-{s.ddim_steps}, "
                "from noise to digits.", "denoising animation"),
        _figure("denoising-last.png", "The GIF's last frame.", "denoised images"),
    ]


def _fid_and_timing(results: dict, s: Settings) -> list[str]:
    skipped = results["fid DDPM-1000"].get("skipped")
    if skipped:
        return ["<h2>FID</h2>", f'<p class="note">{escape(skipped)}.</p>', "<h2>Timing</h2>",
                tables.html_table(*tables.timing_table(results["timing"]), theirs_last=True)]
    return [
        "<h2>FID</h2>",
        '<p class="note">FID here is computed on the features of an MNIST digit classifier shipped with the '
        f"project, against the test set's statistics; the student report's {REPORT_FID['DDPM-1000']:.2f} and "
        f"{REPORT_FID['DDIM-50']:.2f} used Inception "
        "features, another scale, so compare each row with its <b>floor</b>: real training images scored the "
        f"same way at the same count. This is a <b>--{escape(s.name)}</b> run: {s.images_of(HEADLINE)} images "
        f"for DDIM-50, {s.fid_images} for the other DDIM and DPM-Solver++ rows, {s.ddpm_images} for DDPM, "
        f"sampled {'under bf16 autocast' if s.precision == 'bf16' else 'in fp32'}. "
        "FID at small counts is biased upward, the floor with it, and it moves with the images drawn: the "
        "<b>floor range</b> is the floor of several disjoint draws of real digits. A row inside that range is as "
        "good as real data at its count; one below the floor's first draw is no better than real data, only a "
        "luckier draw. Only more images tell such rows apart.</p>",
        tables.html_table(*tables.fid_table(results)),
        tables.html_definitions(tables.FID_COLUMNS),
        "<p>Class shares of each row (the share of its images the classifier calls each digit; 10% each is ideal):</p>",
        tables.html_table(*tables.class_table(results)),
        tables.html_definitions(tables.CLASS_COLUMNS),
        "<h2>Timing</h2>",
        tables.html_table(*tables.timing_table(results["timing"]), theirs_last=True),
        tables.html_definitions(tables.TIMING_COLUMNS),
    ]


def _inversion(results: dict) -> list[str]:
    study = results["merge study"].get("study")
    return [
        "<h2>Inversion</h2>",
        f"<p>Reconstruction error of DDIM inversion: {results['reconstruction']['rows'][0]['images']} test images "
        "inverted to latents and decoded with the same number of steps; per-pixel MSE on [0, 1], beside "
        "Table 2 of the DDIM paper for CIFAR-10.</p>",
        tables.html_table(*tables.reconstruction_table(results["reconstruction"]["rows"]), theirs_last=True),
        tables.html_definitions(tables.RECONSTRUCTION_COLUMNS),
        "<p>Figs. 3 and 4: the first test 2 and 5, inverted with DDIM, their latents mixed by each rule and "
        "decoded, beside the pixel mix.</p>",
        *[_figure(f, f"2 + 5, {rule} latent mix against the pixel mix.", f"merge {rule}")
          for f, rule in zip(results["merges"]["files"], results["merges"]["rules"])],
        "<h2>Does 2 + 5 make an 8?</h2>",
    ] + ([f'<p class="note">{escape(results["merge study"]["skipped"])}.</p>'] if study is None else [
        f"<p>{escape(tables.merge_answer(study))}</p>",
        tables.html_table(*tables.merge_table(study)),
        tables.html_definitions(tables.MERGE_COLUMNS),
        "<p>Class pairs whose most common merge is a third digit:</p><ul>",
        *[f"<li>{escape(line)}</li>" for line in third_digits(study)],
        "</ul>",
        _figure("merge-study.png", "Most common result of each class pair's merges; colour: its share.", "merge heat map"),
    ])


def _curve_and_provenance(results: dict, prov: dict) -> list[str]:
    html = ["<h2>FID against training time</h2>"]
    curve = results["fid curve"]
    if curve["available"]:
        html.append(_figure("fid-curve.png", "FID of the periodic checks during training (<a href=\"fid.csv\">"
                            "fid.csv</a>), against minutes of training. " + escape(coverage(curve.get("covers"))),
                            "FID curve"))
    else:
        html.append("<p>This checkpoint's run kept no fid.csv (train with --fid-every to record one).</p>")
    html += ["<h2>Provenance</h2>", "<p>Each number above is rerun by one command:</p>",
             tables.html_table(["part", "command"], [[k, v] for k, v in prov["commands"].items()]),
             "<table>", *[f"<tr><th>{escape(k)}</th><td>{escape(json.dumps(v) if isinstance(v, dict) else str(v))}"
                          "</td></tr>" for k, v in prov.items() if k != "commands"], "</table>"]
    return html


def coverage(covers: dict | None) -> str:
    """What part of the model's training the FID curve shows, in a sentence."""
    if not covers or "steps_in_all" not in covers:
        return ""
    shown = (f"The checks cover steps {covers['first_step']:,} to {covers['last_step']:,}, "
             f"{covers['minutes']:.0f} minutes of training")
    if covers["last_step"] >= covers["steps_in_all"]:
        return shown + ": the whole training."
    stages = f" in {covers['stages']} stages" if covers["stages"] > 1 else ""
    return (f"{shown}, of the model's {covers['steps_in_all']:,} steps and {covers['minutes_in_all']:.0f} "
            f"minutes{stages}; the rest of its training ran without FID checks, and its FID now is the FID table's.")


def summary_of(results: dict, settings: Settings, prov: dict) -> dict:
    """The key numbers (what the README's table and the closing summary show) and the provenance."""
    labels = [row.label for row in FID_ROWS]
    rows = [{k: results[f"fid {label}"][k] for k in ("label", "n", "fid_test", "floor_fid_test", "floor_spread",
                                                      "precision", "recall", "seconds")} for label in labels
            if "skipped" not in results[f"fid {label}"]]
    t = results["timing"]
    recon = {r["steps"]: r["mse"] for r in results["reconstruction"]["rows"]}
    methods = results["merge study"].get("study", {"methods": {}})["methods"]
    return {"settings": settings.name, "fid": rows,
            "timing": {k: t.get(k) for k in ("device_name", "batch_size", "precision", "compile", "ddpm_s", "ddim_s",
                                              "ratio")},
            "reconstruction_mse": recon,
            "two_plus_five_to_eight": {m: [v["counts"]["2+5"][8], sum(v["counts"]["2+5"])] for m, v in methods.items()},
            "conditional": _conditional_summary(results["conditional"]),
            "student": _student_summary(results["student"]),
            "provenance": prov}


def _student_summary(section: dict) -> dict:
    """The student section's numbers by step count, and the teacher's timing beside them; or its note."""
    if not section["available"]:
        return {"available": False, "note": section["note"]}
    keep = ("steps", "distilled_steps", "n", "fid_test", "floor_fid_test", "floor_spread", "precision", "recall",
            "seconds")
    return {"available": True, "model": section["model"], "method": section["method"],
            "distilled_steps": section["distilled_steps"], "timing": section["timing"],
            "rows": [{k: r[k] for k in keep} for r in section["rows"]]}


def _conditional_summary(section: dict) -> dict:
    """The conditional section's numbers by guidance scale, or its note."""
    if not section["available"]:
        return {"available": False, "note": section["note"]}
    keep = ("guidance", "n", "accuracy", "accuracy_by_digit", "fid_test", "floor_fid_test", "floor_spread",
            "precision", "recall", "seconds")
    return {"available": True, "model": section["model"], "default_guidance": section["default_guidance"],
            "rows": [{k: r[k] for k in keep} for r in section["rows"]]}


def write(out: Path, results: dict, settings: Settings, prov: dict, seconds: float = 0.0,
          parts: dict | None = None) -> dict:
    """index.html, summary.json and report.md, each whole or not at all; returns the summary.
    `seconds`: the run's wall time; `parts`: each part's seconds and whether it was reused (Cache.times)."""
    summary = summary_of(results, settings, prov) | {"seconds": seconds, "parts": parts or {}}
    body = "\n".join(_figures(results, settings) + _fid_and_timing(results, settings) + _student(results)
                     + _conditional(results)
                     + _inversion(results)
                     + _curve_and_provenance(results, prov))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>mnistdiff report</title>'
            f'<style>{CSS}</style></head><body>\n'
            f"<h1>mnistdiff report</h1><p>{escape(prov['model'])}, --{escape(settings.name)} counts, written "
            f"{escape(prov['written'])}. The numbers are also in <a href=\"summary.json\">summary.json</a> and "
            f'<a href="report.md">report.md</a>.</p>\n{body}\n</body></html>\n')
    atomic_write(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    atomic_write(out / "report.md", tables.markdown(results).encode())
    atomic_write(out / "index.html", page.encode())
    return summary


def _report_timing() -> str:
    r = REPORT_TIMING
    return f"{r['ddpm_s']:.0f} s / {r['ddim_s']:.1f} s on a {r['short_device']}"


def print_summary(summary: dict, out: Path, file=sys.stdout) -> None:
    """One screen: the headline numbers and the page to open."""
    s = summary["provenance"]["settings"]
    ran = (f"FID rows and timing {'under bf16 autocast' if s['precision'] == 'bf16' else 'in ' + s['precision']}"
           + (" through torch.compile" if s.get("compile") else "")
           + ("; inversion and merges in fp32" if s["precision"] != "fp32" else ", inversion and merges too"))
    lines = [f"mnistdiff report (--{summary['settings']}) in {summary.get('seconds', 0) / 60:.1f} min, {ran}", ""]
    reused = [p["seconds"] for p in summary.get("parts", {}).values() if p["reused"]]
    if reused:
        lines[0] += f" ({len(reused)} parts reused from the cache, {sum(reused) / 60:.1f} min when computed)"
    width = max((len(r["label"]) for r in summary["fid"]), default=0)
    for r in summary["fid"]:
        lines.append(f"  {r['label']:<{width}} {r['n']:>6} images  FID {r['fid_test']:7.3f}  floor {r['floor_fid_test']:6.3f}"
                     f" ({tables.floor_range(r['floor_spread'])})  precision {r['precision']:.3f}"
                     f"  recall {r['recall']:.3f}")
    t = summary["timing"]
    lines += ["", f"  batch of {t['batch_size']} on {t['device_name']}: DDPM-1000 {t['ddpm_s']:.1f} s, "
              f"DDIM-50 {t['ddim_s']:.2f} s, ratio {t['ratio']:.1f} (report: {_report_timing()})"]
    lines.append("  reconstruction MSE: " + ", ".join(f"S={k}: {v:.2g}" for k, v in summary["reconstruction_mse"].items()))
    cond = summary["conditional"]
    lines.append("  conditional model: " + (cond["note"] if not cond["available"] else ", ".join(
        f"s={r['guidance']:g} read as requested {r['accuracy']:.3f} FID {r['fid_test']:.3f}" for r in cond["rows"])))
    fast = summary["student"]
    lines.append("  student: " + (fast["note"] if not fast["available"] else ", ".join(
        f"{r['steps']} call(s) FID {r['fid_test']:.3f} {r['seconds']:.2f} s" for r in fast["rows"])
        + f" a batch of {fast['timing']['batch_size']} (DDIM-{fast['timing']['teacher_steps']}: "
        f"{fast['timing']['teacher_s']:.2f} s)"))
    lines.append("  2 + 5 -> 8: " + ", ".join(f"{m} {k}/{n}" for m, (k, n) in summary["two_plus_five_to_eight"].items()))
    lines += ["", f"open {(out / 'index.html').resolve().as_uri()}"]
    print("\n".join(lines), file=file)
