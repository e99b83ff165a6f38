"""The benchmark suite runs end to end on the tiny preset and reports against the targets."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_suite_writes_json_and_markdown(tmp_path):
    out = tmp_path / "bench"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--out", str(out), "--presets", "tiny",
                    "--repeats", "1", "--skip", "sampling,memory"], check=True, capture_output=True)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["peak_gflops"]["fp32"] > 0 and record["peak_gflops"]["bf16"] > 0
    models = {r["model"] for r in record["speed"]}
    assert models == {"tiny", "diffusers UNet2DModel"}
    theirs = next(r for r in record["speed"] if r["model"] == "diffusers UNet2DModel")
    assert 1.0e6 < theirs["params"] < 1.2e6 and 0.3 < theirs["gflop_per_image"] < 0.45  # small's size
    table = out.with_suffix(".md").read_text()
    assert "| diffusers UNet2DModel |" in table and "## Targets" in table


def test_rss_job_reports_its_own_peak():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rss.py"), "sample", "tiny"], check=True,
                          capture_output=True, text=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["job"] == "sample" and 50 < row["peak_rss_mib"] < 4096
