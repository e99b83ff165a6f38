"""`mnistdiff report` on a tiny model with tiny counts, then the page opened in a headless Chromium."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import make_idx_folder
from mnistdiff import files, loading
from mnistdiff.cli import main
from mnistdiff.precision import pick_precision
from mnistdiff.report import QUICK, build_report
from mnistdiff.report.cache import Cache

TINY = replace(QUICK, name="tiny", fid_images=10, headline_images=10, ddpm_images=10, timing_batch=2,
               timing_repeats=2, reconstruction_images=2, reconstruction_steps=(2, 5), merge_per_class=1,
               trajectory_images=4, ddim_steps=5)


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
    assert [r["n"] for r in summary["fid"]] == [10] * 8
    assert summary["fid"][0]["label"] == "DDPM-100"
    assert "http" not in html.replace("http-equiv", "")  # nothing fetched from the network
    assert summary["provenance"]["settings"]["merge_per_class"] == 1


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
    assert capsys.readouterr().err.count("reused from the cache") == 15
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
