"""A time budget that anneals, and a run that starts from another checkpoint's weights."""

import json

import pytest
import torch

from mnistdiff import files, loading
from mnistdiff.cli import main
from mnistdiff.model.presets import TrainConfig
from mnistdiff.training import budget, loop, train
from mnistdiff.training.lr import learning_rate

FAST = ["--preset", "tiny", "--checkpoint-every", "10", "--sample-every", "1000"]


def train_cli(out, data_dir, *extra):
    return main(["train", *FAST, "--data-dir", str(data_dir), "--out", str(out), *extra])


def test_cosine_decay_ends_with_the_time_budget_when_that_comes_first():
    cfg = TrainConfig(steps=1_000_000, warmup=10, lr=1.0, lr_decay="cosine")
    assert learning_rate(cfg, 20) == pytest.approx(1.0, abs=1e-4)  # by steps alone, barely started
    assert learning_rate(cfg, 20, time_done=0.5) == pytest.approx(0.5)
    assert learning_rate(cfg, 20, time_done=1.0) == pytest.approx(0.0)
    assert learning_rate(cfg, 5, time_done=0.9) == pytest.approx(0.6)  # warm-up first, whatever the clock
    # Steps that end first still end the decay.
    assert learning_rate(TrainConfig(steps=110, warmup=10, lr=1.0, lr_decay="cosine"), 110, 0.1) == 0.0
    assert learning_rate(TrainConfig(steps=110, warmup=10, lr=1.0), 50, time_done=1.0) == 1.0  # constant


def test_a_run_stopped_by_minutes_has_annealed(idx_folder, tmp_path, step_clock):
    """On the test's clock each step takes 1 s: 30 s of budget are 30 steps, and the cosine decay
    follows the share of the budget spent before each step."""
    run = tmp_path / "run"
    train(run, preset="tiny", data_dir=idx_folder, steps=1_000_000, lr_decay="cosine", minutes=0.5, progress=False,
          clock=step_clock)
    rows = [line.split(",") for line in (run / "log.csv").read_text().splitlines()[1:]]
    steps, lrs = [int(r[0]) for r in rows], [float(r[2]) for r in rows]
    assert steps == [1, 10, 20, 30]  # the tiny preset logs every 10 steps
    cfg = TrainConfig(steps=1_000_000, warmup=10, lr=2e-3, lr_decay="cosine")  # the tiny preset's lr and warm-up
    # The row of step s shows the lr of the step from s - 1, taken with (s - 1) of the 30 s spent.
    assert lrs == pytest.approx([learning_rate(cfg, s - 1, time_done=(s - 1) / 30) for s in steps], rel=1e-4)
    assert lrs[-1] < 0.01 * 2e-3  # a step-based decay would still be at 2e-3


@pytest.mark.parametrize("compile_s, steps", [(40.0, 0), (20.0, 10)])
def test_the_time_budget_counts_compiling(idx_folder, tmp_path, monkeypatch, step_clock, compile_s, steps):
    """--compile's build and gradient check are part of --minutes: of a 30 s budget, a 40 s build
    leaves no steps and a 20 s one leaves 10 (each step takes 1 s on the test's clock)."""
    def slow_compile(model, schedule, x0, precision):
        step_clock.now += compile_s
        return model, "compile: stand-in"

    monkeypatch.setattr(loop, "compile_for_training", slow_compile)
    run = tmp_path / "run"
    train(run, preset="tiny", data_dir=idx_folder, steps=1_000_000, minutes=0.5, compile=True, progress=False,
          clock=step_clock)
    assert loading.find(run).name == f"step_{steps:07d}"


def test_the_bar_ends_where_the_budget_or_the_steps_end_first():
    assert budget.steps_in_budget(100, 1000, seconds_left=60.0, steps_per_s=2.0) == 220
    assert budget.steps_in_budget(100, 150, seconds_left=60.0, steps_per_s=2.0) == 150  # steps end first
    assert budget.steps_in_budget(100, 1000, seconds_left=-5.0, steps_per_s=2.0) == 100  # the budget is spent
    assert budget.steps_in_budget(100, 1000, seconds_left=float("inf"), steps_per_s=2.0) == 1000  # no --minutes


def test_minutes_must_be_positive(idx_folder, tmp_path, capsys):
    assert train_cli(tmp_path / "run", idx_folder, "--minutes", "-1") == 2
    assert "--minutes" in capsys.readouterr().err


def test_init_from_starts_from_the_ema_weights_with_a_fresh_optimizer(idx_folder, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train_cli(first, idx_folder, "--steps", "20") == 0
    source = loading.find(first)
    _, before = loading.read(source)
    # A learning rate of ~0 leaves the weights where they started.
    assert train_cli(second, idx_folder, "--steps", "10", "--lr", "1e-20", "--init-from", str(first)) == 0
    config, after = loading.read(loading.find(second))
    for name, value in before["ema"].items():
        torch.testing.assert_close(after["model"][name], value)
    assert config["init_from"]["step"] == 20
    assert config["init_from"]["weights_sha256"] == files.sha256(source / "weights.safetensors")
    # Resuming the new run keeps the record of where it started.
    assert train_cli(second, idx_folder, "--steps", "20", "--resume") == 0
    resumed = json.loads((loading.find(second) / "config.json").read_text())
    assert resumed["init_from"] == config["init_from"]


def test_init_from_and_resume_do_not_go_together(idx_folder, tmp_path, capsys):
    first = tmp_path / "first"
    assert train_cli(first, idx_folder, "--steps", "10") == 0
    assert train_cli(first, idx_folder, "--resume", "--init-from", str(first)) == 2
    assert "--init-from" in capsys.readouterr().err


def test_export_of_a_continued_model_keeps_the_base_history(idx_folder, tmp_path, capsys):
    checks = ["--fid-every", "5", "--fid-images", "8", "--fid-steps", "2"]
    base_run, base, run = tmp_path / "base-run", tmp_path / "base", tmp_path / "run"
    assert train_cli(base_run, idx_folder, "--steps", "10", *checks) == 0
    assert main(["export", "--checkpoint", str(base_run), "--out", str(base)]) == 0
    assert train_cli(run, idx_folder, "--steps", "5", "--init-from", str(base), *checks) == 0
    out = tmp_path / "shipped"
    assert main(["export", "--checkpoint", str(run), "--out", str(out), "--base", str(base)]) == 0

    fid = [line.split(",") for line in (out / "fid.csv").read_text().splitlines()[1:]]
    assert [int(row[0]) for row in fid] == [5, 10, 15]  # the run's check at its step 5 is step 15 in all
    base_end = float((base / "log.csv").read_text().splitlines()[-1].split(",")[-1])
    assert float(fid[2][1]) == pytest.approx(float((run / "fid.csv").read_text().splitlines()[1].split(",")[1])
                                             + base_end, rel=1e-5)
    log_steps = [int(line.split(",")[0]) for line in (out / "log.csv").read_text().splitlines()[1:]]
    assert log_steps == sorted(log_steps) and log_steps[-1] == 15
    record = json.loads((out / "record.json").read_text())
    assert record["step"] == 5 and record["steps_in_all"] == 15
    assert record["base"] == json.loads((base / "record.json").read_text())

    # Weights other than those the run started from are refused.
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "x"), "--base", str(out)]) == 2
    assert "other weights" in capsys.readouterr().err

    # A third stage counts on from the whole history of the continued base, not from its last stage.
    third, third_out = tmp_path / "third", tmp_path / "shipped-again"
    assert train_cli(third, idx_folder, "--steps", "5", "--init-from", str(out), *checks) == 0
    assert main(["export", "--checkpoint", str(third), "--out", str(third_out), "--base", str(out)]) == 0
    fid = [line.split(",") for line in (third_out / "fid.csv").read_text().splitlines()[1:]]
    assert [int(row[0]) for row in fid] == [5, 10, 15, 20]
    out_end = float((out / "log.csv").read_text().splitlines()[-1].split(",")[-1])
    assert float(fid[3][1]) > out_end
    assert json.loads((third_out / "record.json").read_text())["steps_in_all"] == 20
