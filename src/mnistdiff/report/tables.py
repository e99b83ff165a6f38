"""The report's tables as (headers, rows) of strings, written out as HTML or Markdown."""

from __future__ import annotations

from html import escape

from mnistdiff.evaluation.report import worst_digit
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
    headers = ["sampler", "images", "FID vs test", "floor (real, same count)", "floor range", "FID / floor",
               "FID vs train", "precision", "recall", "p >= 0.9", "seconds", "report (Inception FID)"]
    rows = []
    for label in [row.label for row in FID_ROWS]:
        r = results[f"fid {label}"]
        rows.append([r["label"], str(r["n"]), f"{r['fid_test']:.3f}", f"{r['floor_fid_test']:.3f}",
                     floor_range(r["floor_spread"]), f"{r['fid_test'] / r['floor_fid_test']:.1f}x",
                     f"{r['fid_train']:.3f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}",
                     f"{r['confident_share']:.3f}", f"{r['seconds']:.0f}",
                     f"{REPORT_FID[label]:.2f}" if label in REPORT_FID else "-"])
    return headers, rows


def floor_range(spread: dict) -> str:
    """The floor's min-max over its disjoint draws, and how many."""
    return f"{spread['min']:.3f}-{spread['max']:.3f} ({spread['draws']} draws)"


# What each table's columns mean, (column, meaning): the line under each table, on the page and in report.md.
FID_COLUMNS = (
    ("images", "generated images in the row."),
    ("FID vs test", "Frechet distance between the features (from the shipped digit classifier) of the row's images "
                    "and those of the 10,000 test digits; lower is better."),
    ("floor (real, same count)", "the same FID of as many real training digits, one draw: what a perfect model "
                                 "scores at this count."),
    ("floor range", "min-max of the floor over disjoint draws of real training digits. A row inside it scores as "
                    "real digits do at its count, and its distance from the one draw shown is the luck of the draw: "
                    "below that draw is not better than real data."),
    ("FID / floor", "FID vs test over the floor."),
    ("FID vs train", "the same FID against the 60,000 training digits' statistics."),
    ("precision", "share of the row's images inside the feature neighbourhoods (to the 3rd nearest neighbour) of "
                  "as many test images: fidelity."),
    ("recall", "share of those test images inside the row's images' neighbourhoods: coverage."),
    ("p >= 0.9", "share of the images the classifier reads as one digit with a probability of 0.9 or more."),
    ("seconds", "wall time to sample the row."),
    ("report (Inception FID)", "the student report's FID, on Inception features: another scale, not comparable "
                               "with ours."),
)
CLASS_COLUMNS = (("0 to 9", "share of the row's images the classifier reads as that digit; 10% each is ideal."),)
TIMING_COLUMNS = (
    ("batch", "images sampled at once."),
    ("precision", "the arithmetic the model ran in."),
    ("DDPM-T (s)", "seconds for one batch with DDPM over all T steps, one run."),
    ("DDIM-50 (s)", "the same with DDIM in 50 steps, the median of several runs around DDPM's."),
    ("ratio", "DDPM's seconds over DDIM's."),
)
RECONSTRUCTION_COLUMNS = (
    ("S", "DDIM steps, of the inversion and of the decoding alike; each cell is the per-pixel mean squared error "
          "on [0, 1] between the test images and their reconstructions."),
)
MERGE_COLUMNS = (
    ("images", "merges decoded (image pairs per class pair times 45 class pairs)."),
    ("FID vs test", "of the merges, as in the FID table."),
    ("mean confidence", "the classifier's mean top probability."),
    ("p >= 0.9", "share of merges it reads with a probability of 0.9 or more."),
    ("class A", "share read as the smaller digit of their pair."),
    ("class B", "share read as the larger digit of their pair."),
    ("third class", "share read as neither."),
    ("2 + 5 -> 8", "merges of a 2 and a 5 read as an 8, of all 2 + 5 merges."),
)


def html_definitions(columns: tuple[tuple[str, str], ...]) -> str:
    return '<p class="defs">' + " ".join(f"<b>{escape(c)}</b>: {escape(m)}" for c, m in columns) + "</p>"


def md_definitions(columns: tuple[tuple[str, str], ...]) -> str:
    return " ".join(f"**{c}**: {m}" for c, m in columns) + "\n"


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
                          *student_markdown(results["student"], results),
                          *conditional_markdown(results["conditional"]),
                          "## Inversion", "", md_table(*reconstruction_table(results["reconstruction"]["rows"])), ""])
    return "\n".join([
        "# mnistdiff report", "", "## FID", "", md_table(*fid_table(results)), md_definitions(FID_COLUMNS),
        md_table(*class_table(results)), md_definitions(CLASS_COLUMNS),
        "## Timing", "", md_table(*timing_table(results["timing"])), md_definitions(TIMING_COLUMNS),
        *student_markdown(results["student"], results),
        *conditional_markdown(results["conditional"]),
        "## Inversion", "", md_table(*reconstruction_table(results["reconstruction"]["rows"])),
        md_definitions(RECONSTRUCTION_COLUMNS),
        "## Merge study", "", merge_answer(study), "", md_table(*merge_table(study)), md_definitions(MERGE_COLUMNS),
        *[f"- {line}" for line in third_digits(study)], ""])


CONDITIONAL_TITLE = "Draw me a 7: the conditional model"
GUIDANCE_COLUMNS = (
    ("guidance s", "the classifier-free guidance scale: 1 is the conditional model alone, more follows the label "
                   "harder (one model call of a doubled batch per step)."),
    ("images", "class-balanced DDIM-50 samples, labels 0..9 in turn."),
    ("read as requested", "share of the images the shipped classifier reads as the digit they were drawn for."),
    ("worst digit", "the label with the lowest such share, and that share."),
    ("FID vs test", "as in the FID table, of the class-balanced set."),
    ("floor", "real training digits at the same count, as in the FID table."),
    ("floor range", "as in the FID table."),
    ("FID / floor", "FID vs test over the floor."),
    ("precision", "as in the FID table: fidelity."),
    ("recall", "as in the FID table: coverage, which strong guidance trades away."),
    ("seconds", "wall time to sample the row."),
)


def guidance_table(section: dict) -> tuple[list[str], list[list[str]]]:
    """One row per guidance scale of the conditional model's section."""
    headers = [c for c, _ in GUIDANCE_COLUMNS]
    rows = []
    for r in section["rows"]:
        worst, share = worst_digit(r["accuracy_by_digit"])
        rows.append([f"{r['guidance']:g}", str(r["n"]), f"{r['accuracy']:.3f}", f"{worst}: {share:.3f}",
                     f"{r['fid_test']:.3f}", f"{r['floor_fid_test']:.3f}", floor_range(r["floor_spread"]),
                     f"{r['fid_test'] / r['floor_fid_test']:.1f}x", f"{r['precision']:.3f}", f"{r['recall']:.3f}",
                     f"{r['seconds']:.0f}"])
    return headers, rows


def conditional_intro(section: dict) -> str:
    """The sentence above the section's grid."""
    return (f"{section['model']}, {section['classes']} labels. The grid: {section['digit_row']} images of each digit "
            f"(one row per label), DDIM-{section['steps']} at guidance s = {section['default_guidance']:g}. The table: "
            f"{section['rows'][0]['n'] if section['rows'] else 0} class-balanced images at each guidance scale.")


def conditional_markdown(section: dict) -> list[str]:
    """The section in Markdown: its note, or its sentence and table."""
    if not section["available"]:
        return [f"## {CONDITIONAL_TITLE}", "", section["note"], ""]
    return [f"## {CONDITIONAL_TITLE}", "", conditional_intro(section), "", md_table(*guidance_table(section)),
            md_definitions(GUIDANCE_COLUMNS)]


STUDENT_TITLE = "Fast: few-step students"
STUDENT_COLUMNS = (
    ("model", "the student at a number of calls (distilled for that many steps, or for more), and its teacher "
              "(the report's model) with DDIM-50 above it."),
    ("calls", "model evaluations per image."),
    ("images", "as in the FID table; the student's rows start from the report's seed, as the FID rows do."),
    ("FID vs test", "as in the FID table."),
    ("floor", "real training digits at the same count, as in the FID table."),
    ("FID / floor", "FID vs test over the floor."),
    ("precision", "as in the FID table: fidelity."),
    ("recall", "as in the FID table: coverage."),
    ("seconds a batch", "wall time for one batch from the same noise, the median of turns in which the teacher's "
                        "DDIM-50 and each student row run one after another."),
)


def student_intro(section: dict) -> str:
    """The sentence above the section's grid."""
    if any(r["distilled_steps"] != section["distilled_steps"] for r in section["rows"]):
        made = (f"made by {section['method']} distillation of the report's model, each row from the student "
                "distilled for its number of calls")
    else:
        made = (f"made by {section['method']} distillation of the report's model for {section['distilled_steps']} "
                "step(s), sampled in 1 to that many calls")
    return (f"The student: {section['model']}, {made}. A student cannot invert images: the experiments below use "
            "its teacher.")


def student_table(section: dict, results: dict) -> tuple[list[str], list[list[str]]]:
    """The teacher's DDIM-50 row of the FID table, then one row per student step count."""
    headers = [c for c, _ in STUDENT_COLUMNS]
    headers[-1] = f"seconds a batch of {section['timing']['batch_size']}"
    t = results.get("fid DDIM-50", {})
    rows = []
    if "fid_test" in t:
        rows.append(["teacher, DDIM-50", "50", str(t["n"]), f"{t['fid_test']:.3f}", f"{t['floor_fid_test']:.3f}",
                     f"{t['fid_test'] / t['floor_fid_test']:.1f}x", f"{t['precision']:.3f}", f"{t['recall']:.3f}",
                     f"{section['timing']['teacher_s']:.2f}"])
    for r in section["rows"]:
        rows.append([f"student ({r['distilled_steps']}-step), {r['steps']} call(s)", str(r["steps"]), str(r["n"]),
                     f"{r['fid_test']:.3f}", f"{r['floor_fid_test']:.3f}", f"{r['fid_test'] / r['floor_fid_test']:.1f}x",
                     f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['seconds']:.3f}"])
    return headers, rows


def student_markdown(section: dict, results: dict) -> list[str]:
    """The section in Markdown: its note, or its sentence and table."""
    if not section["available"]:
        return [f"## {STUDENT_TITLE}", "", section["note"], ""]
    return [f"## {STUDENT_TITLE}", "", student_intro(section), "", md_table(*student_table(section, results)),
            md_definitions(STUDENT_COLUMNS)]
