"""`mnistdiff report` on a tiny model with tiny counts, then the page opened in a headless Chromium."""

import errno
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import make_idx_folder
from mnistdiff import files, loading
from mnistdiff.cli import main
from mnistdiff.precision import pick_precision
from mnistdiff.report import FID_ROWS, QUICK, build_report
from mnistdiff.report.cache import Cache

TINY = replace(QUICK, name="tiny", fid_images=10, headline_images=10, ddpm_images=10, timing_batch=2,
               timing_repeats=2, reconstruction_images=2, reconstruction_steps=(2, 5), merge_per_class=1,
               trajectory_images=4, ddim_steps=5, guidance_scales=(1.0, 2.0), digit_row=2)
TINY_COND = Path(__file__).parent / "data" / "tiny-cond-checkpoint"


@pytest.fixture(scope="module", autouse=True)
def no_shipped_conditional_model(tmp_path_factory):
    """The report's default conditional model is the shipped one: here, as in an installation without
    it, so that the pages below do not depend on whether one is shipped."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(loading.SHIPPED, "conditional", tmp_path_factory.mktemp("none") / "conditional-mnist")
        yield


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny model trained for two steps, its schedule cut to T = 100 so DDPM takes 100 steps
    (the weights do not depend on T), and a data set holding every digit class."""
    root = tmp_path_factory.mktemp("report")
    data = make_idx_folder(root / "data", n=120)
    run = root / "run"
    assert main(["train", "--preset", "tiny", "--steps", "2", "--fid-every", "2", "--fid-images", "10",
                 "--data-dir", str(data), "--out", str(run)]) == 0
    config_path = loading.find(run) / "config.json"
    config = json.loads(config_path.read_text())
    config["schedule"]["T"] = 100
    config_path.write_text(json.dumps(config))
    files.record_checksums(config_path.parent, ["config.json"])  # an edit made on purpose
    return run, data


@pytest.fixture(scope="module")
def page(tiny_run, tmp_path_factory) -> Path:
    run, data = tiny_run
    out = tmp_path_factory.mktemp("page")
    build_report(out, run, TINY, device="cpu", data_dir=data, progress=False)
    return out


def test_the_page_holds_every_part(page):
    html = (page / "index.html").read_text()
    for heading in ("Figures", "FID", "Timing", "Inversion", "Does 2 + 5 make an 8?", "FID against training time",
                    "Provenance"):
        assert f"<h2>{heading}</h2>" in html
    summary = json.loads((page / "summary.json").read_text())
    assert [r["n"] for r in summary["fid"]] == [10] * len(FID_ROWS)
    assert summary["fid"][0]["label"] == "DDPM-100"
    assert "http" not in html.replace("http-equiv", "")  # nothing fetched from the network
    assert summary["provenance"]["settings"]["merge_per_class"] == 1


def test_the_floor_has_its_spread_and_every_column_its_definition(page):
    import re
    from html import escape

    summary = json.loads((page / "summary.json").read_text())
    for row in summary["fid"]:
        spread = row["floor_spread"]  # 5 disjoint draws of 10 of the 120 training images
        assert spread["draws"] == 5 and spread["min"] <= row["floor_fid_test"] <= spread["max"]
        assert spread["min"] <= spread["mean"] <= spread["max"] and spread["min"] < spread["max"]
    html = (page / "index.html").read_text()
    tables = re.findall(r"<table>(.*?)</table>\s*(<p class=\"defs\">.*?</p>)?", html, re.S)
    defined = [t for t in tables if t[1]]
    assert len(defined) == 5  # FID, class shares, timing, reconstruction, merges; not provenance
    for table, defs in defined:
        headers = re.findall(r"<th>(.*?)</th>", table)
        if not headers[1].isdigit():  # class shares (digits) and reconstruction (steps) define theirs at once
            assert all(f"<b>{h}</b>" in defs or h.startswith("DDPM-") for h in headers[1:]), (headers, defs)
    assert f"<b>{escape('p >= 0.9')}</b>" in html and "floor range" in html
    report_md = (page / "report.md").read_text()
    assert "**FID vs train**:" in report_md and "**floor range**:" in report_md


def test_the_terminal_summary_says_which_precision_ran(page):
    import io

    from mnistdiff.report.page import print_summary

    summary, text = json.loads((page / "summary.json").read_text()), io.StringIO()
    print_summary(summary, page, file=text)
    out = text.getvalue()
    ran = pick_precision("auto")  # the settings' precision, as this machine resolves it
    assert ("FID rows and timing " + ("under bf16 autocast" if ran == "bf16" else f"in {ran}")) in out.splitlines()[0]
    assert out.count("(5 draws)") == len(FID_ROWS)  # each FID row's floor range


def test_the_fid_curve_says_what_part_of_training_it_shows():
    from mnistdiff.report.page import coverage
    from mnistdiff.report.parts import fid_coverage

    import csv

    shipped = Path(__file__).parent.parent / "src" / "mnistdiff" / "weights" / "small-mnist"
    with open(shipped / "fid.csv") as f:
        rows = list(csv.DictReader(f))
    covers = fid_coverage(shipped / "fid.csv", rows)
    assert (covers["first_step"], covers["last_step"], covers["steps_in_all"], covers["stages"]) == (2000, 20000, 84130, 5)
    said = coverage(covers)
    assert "steps 2,000 to 20,000" in said and "84,130 steps" in said and "in 5 stages" in said
    assert "ran without FID checks" in said
    whole = coverage({"first_step": 2, "last_step": 2, "minutes": 0.1, "stages": 1, "steps_in_all": 2,
                      "minutes_in_all": 0.1})
    assert whole.endswith("the whole training.")


def test_the_stochastic_ddim_row_samples_with_its_eta(page):
    summary = json.loads((page / "summary.json").read_text())
    rows = {r["label"]: r for r in summary["fid"]}
    assert rows["DDIM-100, eta 1"]["fid_test"] != rows["DDIM-100"]["fid_test"]  # other images from the same noise
    commands = summary["provenance"]["commands"]
    assert "--steps 100 --eta 1 --n 10" in commands["FID DDIM-100, eta 1"]
    assert "--eta" not in commands["FID DDIM-100"]


def test_a_rerun_reuses_every_finished_part(tiny_run, page, capsys):
    run, data = tiny_run
    stamp = (page / "cache" / "timing.json").stat().st_mtime_ns
    build_report(page, run, TINY, device="cpu", data_dir=data)
    # the FID rows and nine other parts
    assert capsys.readouterr().err.count("reused from the cache") == len(FID_ROWS) + 9
    assert (page / "cache" / "timing.json").stat().st_mtime_ns == stamp


def test_compile_builds_one_runner_for_the_fid_rows_and_times_its_own_batch(tiny_run, tmp_path, monkeypatch):
    """With compile on, every FID row shares one compiled model, the timing builds its own (a shared
    one would pad the timed batch to the rows' larger one), and the page says so. compile_model is
    replaced by a counter that returns the model, so no graph is built here."""
    import mnistdiff.runtime as runtime

    built = []
    monkeypatch.setattr(runtime, "compile_model", lambda model, **options: built.append(1) or model)
    run, data = tiny_run
    summary = build_report(tmp_path, run, replace(TINY, compile=True), device="cpu", data_dir=data, progress=False)
    assert len(built) == 2
    assert summary["timing"]["compile"] is True and summary["timing"]["batch_size"] == TINY.timing_batch
    commands = summary["provenance"]["commands"]
    assert "--compile" in commands["FID DDIM-50"] and "--compile" in commands["timing"]
    ran = pick_precision("auto")  # the settings' precision, as this machine resolves it
    assert summary["timing"]["precision"] == ran and f"{ran}, compiled" in (tmp_path / "index.html").read_text()


def test_the_summary_gives_every_parts_time_and_says_which_were_reused(tiny_run, page):
    run, data = tiny_run
    first = json.loads((page / "summary.json").read_text())["parts"]
    assert len(first) == len(FID_ROWS) + 9 and all(p["seconds"] > 0 for p in first.values())
    again = build_report(page, run, TINY, device="cpu", data_dir=data, progress=False)["parts"]
    assert again == {name: {"seconds": p["seconds"], "reused": True} for name, p in first.items()}


def test_without_a_conditional_model_its_section_is_one_line(page):
    html = (page / "index.html").read_text()
    note = "This installation ships no conditional model: --conditional-checkpoint PATH"
    assert "<h2>Draw me a 7: the conditional model</h2>" in html and note in html
    assert "conditional-grid.png" not in html and not (page / "conditional-grid.png").exists()
    summary = json.loads((page / "summary.json").read_text())
    assert summary["conditional"]["available"] is False and summary["conditional"]["note"].startswith(note)
    assert "guidance table" not in summary["provenance"]["commands"]
    assert note in (page / "report.md").read_text()


@pytest.fixture(scope="module")
def conditional_page(tiny_run, page, tmp_path_factory) -> tuple[Path, dict]:
    """The tiny page again with the tiny conditional model: every other part comes from the cache."""
    run, data = tiny_run
    out = copy_of(page, tmp_path_factory.mktemp("conditional"))
    summary = build_report(out, run, TINY, device="cpu", data_dir=data, progress=False,
                           conditional_checkpoint=TINY_COND)
    return out, summary


def test_the_conditional_section_has_a_row_per_digit_and_a_row_per_scale(conditional_page):
    from PIL import Image

    out, summary = conditional_page
    assert [name for name, p in summary["parts"].items() if not p["reused"]] == ["conditional"]
    with Image.open(out / "conditional-grid.png") as grid:  # 10 rows of 2 digits, 2 px apart, scaled by 2
        assert grid.size == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))
    rows = summary["conditional"]["rows"]
    assert [(r["guidance"], r["n"]) for r in rows] == [(1.0, 10), (2.0, 10)]
    for r in rows:  # one image per digit: each digit's share is 0 or 1, and their mean the overall share
        assert set(r["accuracy_by_digit"]) <= {0.0, 1.0} and len(r["accuracy_by_digit"]) == 10
        assert r["accuracy"] == pytest.approx(sum(r["accuracy_by_digit"]) / 10)
        assert r["floor_spread"]["min"] <= r["floor_fid_test"] <= r["floor_spread"]["max"]
    html = (out / "index.html").read_text()
    assert "conditional-grid.png" in html and "<b>read as requested</b>" in html
    assert "| guidance s | images | read as requested |" in (out / "report.md").read_text()
    command = summary["provenance"]["commands"]["guidance table"]
    assert f"--checkpoint {TINY_COND} --scales 1,2 --n 10 --steps 50 --seed 0" in command


def test_the_conditional_rows_read_the_images_generate_draws(conditional_page):
    """The share read as requested, recomputed from the images generate() draws for labels 0..9."""
    from mnistdiff import load_checkpoint
    from mnistdiff.evaluation import load_classifier
    from mnistdiff.evaluation.metrics import features_and_probs
    from mnistdiff.generation import generate

    _, summary = conditional_page
    model, schedule, _ = load_checkpoint(TINY_COND)
    settings = summary["provenance"]["settings"]
    for row in summary["conditional"]["rows"]:
        images = generate(model, schedule, 10, sampler="ddim", steps=50, seed=0, batch_size=settings["batch_size"],
                          precision=settings["precision"], labels=list(range(10)), guidance=row["guidance"])
        read = features_and_probs(load_classifier("mnist")[0], images)[1].argmax(1)
        assert row["accuracy_by_digit"] == (read == torch.arange(10)).double().tolist()


def test_the_command_takes_the_conditional_model(tiny_run, conditional_page, tmp_path, monkeypatch, capsys):
    from mnistdiff.report import SIZES

    run, data = tiny_run
    out = copy_of(conditional_page[0], tmp_path)
    monkeypatch.setitem(SIZES, "quick", TINY)
    argv = ["report", "--out", str(out), "--checkpoint", str(run), "--device", "cpu", "--data-dir", str(data)]
    assert main(argv + ["--conditional-checkpoint", str(TINY_COND)]) == 0
    assert capsys.readouterr().err.count("reused from the cache") == len(FID_ROWS) + 9
    assert json.loads((out / "summary.json").read_text())["conditional"]["rows"] == \
        conditional_page[1]["conditional"]["rows"]


def test_an_unconditional_model_as_the_conditional_one_is_refused(tiny_run, tmp_path):
    run, data = tiny_run
    with pytest.raises(ValueError, match="not a conditional model"):
        build_report(tmp_path, run, TINY, device="cpu", data_dir=data, progress=False, conditional_checkpoint=run)


def test_the_conditional_section_costs_its_model_evaluations():
    from mnistdiff.report import FULL
    from mnistdiff.report.settings import conditional_evaluations

    # the grid: 100 images at s = 2 (a doubled batch); the table: 256 images at s = 2 alone; DDIM-50
    assert QUICK.guidance_scales == (2.0,)
    assert conditional_evaluations(QUICK) == (100 * 2 + 256 * 2) * 50
    assert FULL.guidance_scales == (1.0, 1.5, 2.0, 3.0, 5.0)


def test_the_cache_misses_on_other_settings_a_lost_file_or_force(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        (tmp_path / "a.png").write_bytes(b"x")
        return {"value": len(calls), "files": ["a.png"]}

    cache = Cache(tmp_path, {"model": "abc"})
    assert cache.run("part", {"n": 1}, compute) == ({"value": 1, "files": ["a.png"]}, False)
    assert cache.run("part", {"n": 1}, compute) == ({"value": 1, "files": ["a.png"]}, True)
    assert cache.run("part", {"n": 2}, compute)[1] is False
    assert Cache(tmp_path, {"model": "abd"}).run("part", {"n": 2}, compute)[1] is False
    (tmp_path / "a.png").unlink()
    assert cache.run("part", {"n": 2}, compute)[1] is False
    assert Cache(tmp_path, {"model": "abc"}, force=True).run("part", {"n": 2}, compute)[1] is False
    assert len(calls) == 5


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return path


def test_the_page_loads_in_a_browser_without_errors_or_network(page):
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        tab = browser.new_page()
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto((page / "index.html").resolve().as_uri(), wait_until="load")
        images = tab.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
        tables = tab.eval_on_selector_all("table", "els => els.map(e => e.querySelectorAll('td').length)")
        browser.close()
    assert len(images) >= 10 and all(width > 0 for _, width in images), images
    assert len(tables) >= 7 and all(cells > 0 for cells in tables), tables
    assert errors == []
    assert requests and all(url.startswith("file://") for url in requests), requests


# Faults: a full disk at each kind of file the report writes, each kind of damaged cache entry.

@pytest.fixture(scope="module")
def student_page(tiny_run, page, tmp_path_factory) -> tuple[Path, dict, Path]:
    """The tiny page again with a tiny consistency student of its model, distilled for 2 steps."""
    from mnistdiff.distill import distill

    run, data = tiny_run
    student = tmp_path_factory.mktemp("student") / "run"
    distill(student, method="consistency", teacher=run, student_steps=2, levels=4, steps=2, batch_size=4,
            grid_images=2, precision="fp32", data_dir=data, progress=False)
    out = copy_of(page, tmp_path_factory.mktemp("student-page"))
    summary = build_report(out, run, TINY, device="cpu", data_dir=data, progress=False, student_checkpoint=student)
    return out, summary, student


def test_the_student_section_has_a_row_per_step_count_beside_the_teacher(tiny_run, student_page):
    out, summary, student = student_page
    assert [name for name, p in summary["parts"].items() if not p["reused"]] == ["student"]
    section = summary["student"]
    assert section["method"] == "consistency" and section["distilled_steps"] == 2
    assert all(r["distilled_steps"] == 2 for r in section["rows"])  # one student serves every count
    assert [(r["steps"], r["n"]) for r in section["rows"]] == [(1, 10), (2, 10)]  # 4 calls: more than it takes
    assert section["timing"]["batch_size"] == TINY.timing_batch and section["timing"]["teacher_steps"] == 50
    assert section["timing"]["teacher_s"] > 0 and all(r["seconds"] > 0 for r in section["rows"])
    for r in section["rows"]:
        assert r["floor_spread"]["min"] <= r["floor_fid_test"] <= r["floor_spread"]["max"]
    html = (out / "index.html").read_text()
    assert "<h2>Fast: few-step students</h2>" in html and "student-grid.png" in html
    assert (out / "student-grid.png").is_file()
    report_md = (out / "report.md").read_text()
    assert "| teacher, DDIM-50 | 50 | 10 |" in report_md and "| student (2-step), 2 call(s) | 2 | 10 |" in report_md
    command = summary["provenance"]["commands"]["student table"]
    assert f"--students {student} --steps 1,2,4 --n 10" in command and f"--teacher {tiny_run[0]}" in command


def test_the_student_rows_score_the_images_generate_draws(tiny_run, student_page):
    from mnistdiff import load_checkpoint
    from mnistdiff.evaluation import evaluate
    from mnistdiff.generation import generate

    _, summary, student = student_page
    model, schedule, _ = load_checkpoint(student)
    settings = summary["provenance"]["settings"]
    for row in summary["student"]["rows"]:
        images = generate(model, schedule, 10, steps=row["steps"], seed=0, batch_size=settings["batch_size"],
                          precision=settings["precision"])
        assert evaluate(images, "mnist", tiny_run[1], seed=0)["fid_test"] == pytest.approx(row["fid_test"])


def test_the_shipped_students_serve_each_count_with_the_one_distilled_for_it():
    from mnistdiff.loading import shipped
    from mnistdiff.report.student import SHIPPED_BY_CALLS, load, rerun_command
    from mnistdiff.samplers.common import distilled_steps

    if not all(shipped(name) for name in SHIPPED_BY_CALLS.values()):
        pytest.skip("this installation does not ship every student")
    student = load("fast", torch.device("cpu"), "mnist")
    assert {n: distilled_steps(m) for n, m in student.models.items()} == {1: 1, 2: 2, 3: 4, 4: 4}  # fast serves 3
    assert student.source == "the shipped students (fast, fast-2, fast-1)" and student.checksum.count("+") == 2
    command = rerun_command(TINY, None, "fast", torch.device("cpu"), None)["student table"]
    assert "--students fast,fast-2,fast-1 " in command


def test_a_student_as_the_reports_model_is_refused_in_one_line(tmp_path, capsys):
    assert main(["report", "--checkpoint", "fast", "--out", str(tmp_path / "r"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint fast is a distilled student" in err and "--student-checkpoint" in err
    assert len(err.strip().splitlines()) == 1


def test_the_shipped_student_stays_out_of_another_models_page(page):
    summary = json.loads((page / "summary.json").read_text())
    shipped = (loading.SHIPPED["fast"] / "weights.safetensors").is_file()
    note = ("The shipped student was distilled from the shipped model, not from this one" if shipped
            else "This installation ships no student")
    assert summary["student"] == {"available": False, "note": summary["student"]["note"]}
    assert summary["student"]["note"].startswith(note)
    assert note in (page / "index.html").read_text() and "student-grid.png" not in (page / "index.html").read_text()


def copy_of(page: Path, tmp_path: Path) -> Path:
    out = tmp_path / "page"
    shutil.copytree(page, out)
    return out


def hidden_files(out: Path) -> list[Path]:
    """Temporary files a write left behind (atomic writes name them .NAME.*)."""
    return [p for p in out.rglob(".*") if p.is_file()]


def fill_up_at(monkeypatch, name: str) -> None:
    """The disk fills while the report writes a file called `name`: its temporary file's fsync fails."""
    real = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("victim, part", [
    ("forward.png", "forward"),  # a matplotlib figure
    ("denoising.gif", "trajectory"),
    ("denoising-last.png", "trajectory"),  # a PNG grid
    ("trajectory.json", "trajectory"),  # the cache entry
    ("summary.json", None),
    ("index.html", None),
])
def test_a_full_disk_leaves_the_last_whole_file_and_every_finished_part_cached(
        tiny_run, page, tmp_path, monkeypatch, capsys, victim, part):
    from mnistdiff.report import SIZES

    run, data = tiny_run
    out = copy_of(page, tmp_path)
    if part is not None:
        (out / "cache" / f"{part}.json").unlink()  # computed again, then written
    target = out / ("cache" if victim.endswith(".json") and part else "") / victim
    before = target.read_bytes() if target.is_file() else None
    fill_up_at(monkeypatch, victim)
    monkeypatch.setitem(SIZES, "quick", TINY)
    argv = ["report", "--out", str(out), "--checkpoint", str(run), "--device", "cpu", "--data-dir", str(data)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"mnistdiff: error: no space left on device while writing {target}"), error
    assert not hidden_files(out)
    assert (target.read_bytes() if target.is_file() else None) == before  # the last whole file, or none
    monkeypatch.undo()
    summary = build_report(out, run, TINY, device="cpu", data_dir=data, progress=False)
    assert [name for name, p in summary["parts"].items() if not p["reused"]] == ([part] if part else [])


def test_a_full_disk_on_a_real_filesystem(tiny_run, page, tmp_path):
    """A 'report' on a small tmpfs that fills while it writes the GIF; after room is made, the rerun
    reuses what was finished. Needs the right to mount (root); skipped elsewhere."""
    run, data = tiny_run
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = disk / "page"
        shutil.copytree(page, out)
        for name in ("forward.png", "denoising.gif", "cache/forward.json", "cache/trajectory.json"):
            (out / name).unlink()
        used = shutil.disk_usage(disk).used
        subprocess.run(["mount", "-o", f"remount,size={used + 64 * 1024}", str(disk)], check=True)
        with pytest.raises(files.NoSpace, match=f"while writing {out}"):
            build_report(out, run, TINY, device="cpu", data_dir=data, progress=False)
        assert not hidden_files(out)
        assert (out / "cache" / "forward.json").is_file() and not (out / "denoising.gif").exists()
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        summary = build_report(out, run, TINY, device="cpu", data_dir=data, progress=False)
        assert [name for name, p in summary["parts"].items() if not p["reused"]] == ["trajectory"]
        assert (out / "denoising.gif").read_bytes() == (page / "denoising.gif").read_bytes()
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def damage(cache: Path, kind: str) -> Path:
    """Damage the cache entry of the 'fid DDIM-50' part (or its files' neighbour) one way."""
    entry = cache / "fid-DDIM-50.json"
    text = entry.read_text()
    if kind == "truncated":
        entry.write_text(text[: len(text) // 2])
    elif kind == "garbage":
        entry.write_bytes(bytes(range(256)))
    elif kind == "a list":
        entry.write_text("[1, 2]")
    elif kind == "no result":
        record = json.loads(text)
        del record["result"]
        entry.write_text(json.dumps(record))
    elif kind == "edited number":
        entry.write_text(text.replace('"fid_test": ', '"fid_test": 0.001, "was": ', 1))
    elif kind == "another part's":
        shutil.copy(cache / "fid-DDIM-10.json", entry)
    elif kind == "written without checksums":
        record = json.loads(text)
        entry.write_text(json.dumps({"key": record["key"], "result": record["result"]}))
    return entry


@pytest.mark.parametrize("kind", ["truncated", "garbage", "a list", "no result", "edited number", "another part's",
                                  "written without checksums"])
def test_a_damaged_cache_entry_is_computed_again_with_a_warning(tiny_run, page, tmp_path, capsys, kind):
    run, data = tiny_run
    out = copy_of(page, tmp_path)
    entry = damage(out / "cache", kind)
    summary = build_report(out, run, TINY, device="cpu", data_dir=data, progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {entry}: "), warnings
    assert [name for name, p in summary["parts"].items() if not p["reused"]] == ["fid DDIM-50"]
    rows = {r["label"]: r["fid_test"] for r in summary["fid"]}
    first = {r["label"]: r["fid_test"] for r in json.loads((page / "summary.json").read_text())["fid"]}
    assert rows == first  # computed again, the same number; never 0.001
    assert json.loads(entry.read_text())["part"] == "fid DDIM-50"


def test_a_damaged_figure_is_drawn_again_and_the_page_shows_the_whole_one(tiny_run, page, tmp_path, capsys):
    run, data = tiny_run
    out = copy_of(page, tmp_path)
    figure = out / "forward.png"
    figure.write_bytes(figure.read_bytes()[:100])
    summary = build_report(out, run, TINY, device="cpu", data_dir=data, progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(figure) in warnings[0] and "differs" in warnings[0], warnings
    assert [name for name, p in summary["parts"].items() if not p["reused"]] == ["forward"]
    assert figure.read_bytes() == (page / "forward.png").read_bytes()


def test_markdown_table_writes_a_header_a_rule_and_one_line_per_row():
    from mnistdiff.markdown import table

    assert table(["S", "10"], [["MNIST", "0.01"], ["CIFAR-10", "-"]]) == \
        "| S | 10 |\n|---|---|\n| MNIST | 0.01 |\n| CIFAR-10 | - |\n"
