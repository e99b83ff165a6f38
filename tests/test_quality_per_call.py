"""benchmarks/quality_per_call.py end to end on a tiny model and a tiny data set (its numbers mean nothing)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_curve_is_scored_at_each_budget_and_written(idx_folder, tmp_path):
    from explore_support import tiny_checkpoint

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from quality_per_call import main

    run = tiny_checkpoint(tmp_path / "model")  # untrained
    out = tmp_path / "quality"
    main(["--checkpoint", str(run), "--n", "12", "--nfes", "2,4",
          "--curves", "ddim uniform,heun logsnr,dpm-solver-sde trailing",
          "--data-dir", str(idx_folder), "--precision", "fp32", "--device", "cpu", "--batch-size", "12",
          "--out", str(out)])
    record = json.loads(out.with_suffix(".json").read_text())
    rows = [(r["curve"], r["spacing"], r["nfe_budget"], r["nfe"]) for r in record["rows"]]
    # budget by budget, so a stopped run has every curve at the small budgets
    assert rows == [("ddim uniform", "uniform", 2, 2), ("heun logsnr", "logsnr", 2, 1),
                    ("dpm-solver-sde trailing", "trailing", 2, 2), ("ddim uniform", "uniform", 4, 4),
                    ("heun logsnr", "logsnr", 4, 3), ("dpm-solver-sde trailing", "trailing", 4, 4)]
    for r in record["rows"]:
        assert r["n"] == 12 and r["fid_test"] >= 0 and r["floor_fid_test"] >= 0
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
    table = out.with_suffix(".md").read_text()
    assert "| sampler, grid | NFE 2 | NFE 4 |" in table and "x (3) |" in table  # heun's 3 evaluations of 4
    assert out.with_suffix(".png").stat().st_size > 1000
