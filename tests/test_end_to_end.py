"""Train, kill, resume and sample the tiny preset on a generated IDX data set, through the CLI."""

import json
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mnistdiff import load_checkpoint, loading
from mnistdiff.cli import main
from mnistdiff.training import checkpoint

FAST = ["--preset", "tiny", "--checkpoint-every", "10", "--sample-every", "10"]


def train_cli(out, data_dir, *extra):
    return main(["train", *FAST, "--data-dir", str(data_dir), "--out", str(out), *extra])


def test_train_writes_checkpoint_log_and_grids(idx_folder, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "20") == 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_0000020"
    folder = loading.find(run)
    assert {p.name for p in folder.iterdir()} == {"weights.safetensors", "config.json", "state.safetensors",
                                                 "state.json", "checksums.json"}
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000010.png", "step_0000020.png"]
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,images_per_s,elapsed_s" and rows[-1].startswith("20,")


def test_fid_checks_during_training_go_to_fid_csv(idx_folder, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "20", "--fid-every", "10", "--fid-images", "8") == 0
    rows = (run / "fid.csv").read_text().splitlines()
    assert rows[0] == "step,elapsed_s,images,ddim_steps,fid_test"
    assert [r.split(",")[0] for r in rows[1:]] == ["10", "20"]
    assert all(float(r.split(",")[-1]) > 0 for r in rows[1:])


def test_resume_continues_exactly_where_it_stopped(idx_folder, tmp_path):
    assert train_cli(tmp_path / "straight", idx_folder, "--steps", "20") == 0
    assert train_cli(tmp_path / "split", idx_folder, "--steps", "10") == 0
    assert train_cli(tmp_path / "split", idx_folder, "--steps", "20", "--resume") == 0
    a_cfg, a = loading.read(loading.find(tmp_path / "straight"))
    b_cfg, b = loading.read(loading.find(tmp_path / "split"))
    for part in ("model", "ema"):
        for name in a[part]:
            torch.testing.assert_close(a[part][name], b[part][name], atol=1e-6, rtol=1e-5)
    state_a = checkpoint.read_state(loading.find(tmp_path / "straight"))
    state_b = checkpoint.read_state(loading.find(tmp_path / "split"))
    assert state_a["step"] == state_b["step"] == 20
    assert state_a["optimizer"]["state"][0]["step"] == state_b["optimizer"]["state"][0]["step"]
    steps_logged = [int(r.split(",")[0]) for r in (tmp_path / "split" / "log.csv").read_text().splitlines()[1:]]
    assert steps_logged == sorted(set(steps_logged))


def test_existing_run_needs_resume_and_resume_needs_a_run(idx_folder, tmp_path, capsys):
    assert train_cli(tmp_path / "run", idx_folder, "--steps", "10") == 0
    assert train_cli(tmp_path / "run", idx_folder, "--steps", "20") == 2
    assert "--resume" in capsys.readouterr().err
    assert train_cli(tmp_path / "empty", idx_folder, "--resume") == 2


def test_sigterm_saves_a_checkpoint_and_resume_goes_on(idx_folder, tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnistdiff", "train", *FAST, "--steps", "100000", "--data-dir", str(idx_folder),
         "--out", str(run)], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "latest").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err
    saved = int(loading.find(run).name.split("_")[1])
    assert saved >= 10
    # A save killed half-way leaves a temporary folder, which is never taken for the latest.
    (run / "checkpoints" / ".tmp-killed").mkdir()
    assert train_cli(run, idx_folder, "--steps", str(saved + 5), "--resume") == 0
    assert loading.find(run).name == f"step_{saved + 5:07d}"
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_sample_grid_npz_and_api(idx_folder, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "10") == 0
    out, npz = tmp_path / "grid.png", tmp_path / "images.npz"
    assert main(["sample", "--checkpoint", str(run), "--n", "5", "--batch-size", "3", "--steps", "5",
                 "--out", str(out), "--npz", str(npz)]) == 0
    images = np.load(npz)["images"]
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.uint8
    assert out.stat().st_size > 100
    for path in (run, loading.find(run), loading.find(run) / "weights.safetensors"):
        model, schedule, config = load_checkpoint(path)
        assert config["preset"] == "tiny" and schedule.T == 1000
        x = torch.randn(2, 1, 28, 28)
        assert model(x, torch.tensor([0, 999])).shape == x.shape


def test_ddpm_sampling_from_the_cli(idx_folder, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "10") == 0
    npz = tmp_path / "ddpm.npz"
    # DDPM takes every step unless told otherwise.
    assert main(["sample", "--checkpoint", str(run), "--sampler", "ddpm", "--n", "2",
                 "--out", str(tmp_path / "g.png"), "--npz", str(npz)]) == 0
    assert np.load(npz)["images"].shape == (2, 1, 28, 28)
    assert main(["sample", "--checkpoint", str(run), "--sampler", "ddpm", "--steps", "50"]) == 2
    assert main(["sample", "--checkpoint", str(run), "--sampler", "dpm-solver", "--eta", "0.5"]) == 2


def test_dpm_solver_and_nfe_curve_from_the_cli(idx_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "10") == 0
    npz = tmp_path / "dpm.npz"
    assert main(["sample", "--checkpoint", str(run), "--sampler", "dpm-solver", "--steps", "3", "--n", "2",
                 "--out", str(tmp_path / "g.png"), "--npz", str(npz)]) == 0
    assert np.load(npz)["images"].shape == (2, 1, 28, 28)
    assert main(["sample", "--checkpoint", str(run), "--sampler", "ddim", "--spacing", "cubic"]) == 2
    assert "spacing" in capsys.readouterr().err
    out = tmp_path / "nfe"
    assert main(["nfe-curve", "--checkpoint", str(run), "--n", "8", "--nfes", "2,3", "--data-dir", str(idx_folder),
                 "--out", str(out)]) == 0
    record = json.loads((tmp_path / "nfe.json").read_text())
    assert [(r["sampler"], r["nfe"]) for r in record["rows"]][:3] == [("ddim", 2), ("ddim", 3), ("dpm-solver", 2)]
    assert record["floor_fid_test"] >= 0 and (tmp_path / "nfe.png").stat().st_size > 0
    assert "| dpm-solver, logsnr |" in (tmp_path / "nfe.md").read_text()
    assert main(["nfe-curve", "--checkpoint", str(run), "--n", "4", "--nfes", "2", "--data-dir", str(idx_folder),
                 "--curves", "dpm-solver:quadratic,ddim:uniform:300", "--out", str(out)]) == 0
    rows = json.loads((tmp_path / "nfe.json").read_text())["rows"]
    assert [(r["sampler"], r["spacing"], r["t_end"], r["nfe"]) for r in rows] == [
        ("dpm-solver", "quadratic", None, 2), ("ddim", "uniform", 300, 2)]
    assert "| ddim, uniform, t_end 300 |" in (tmp_path / "nfe.md").read_text()
    assert main(["sample", "--checkpoint", str(run), "--sampler", "dpm-solver", "--steps", "3", "--t-end", "200",
                 "--spacing", "uniform", "--n", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert main(["sample", "--checkpoint", str(run), "--sampler", "dpm-solver", "--steps", "3", "--t-end", "200"]) == 2
    assert "another spacing" in capsys.readouterr().err  # its own grid, trailing, stops at T/n - 1
    assert main(["sample", "--checkpoint", str(run), "--sampler", "ddim", "--steps", "50", "--t-end", "990"]) == 2
    assert "t_end" in capsys.readouterr().err
    assert main(["nfe-curve", "--checkpoint", str(run), "--curves", "ddim:uniform:x"]) == 2


def test_cosine_lr_decays_to_zero_after_warm_up(idx_folder, tmp_path):
    from mnistdiff.model.presets import TrainConfig
    from mnistdiff.training.lr import learning_rate

    cfg = TrainConfig(steps=110, warmup=10, lr=1.0, lr_decay="cosine")
    assert [learning_rate(cfg, s) for s in (0, 9, 10, 60, 110)] == pytest.approx([0.1, 1.0, 1.0, 0.5, 0.0])
    assert learning_rate(TrainConfig(steps=110, warmup=10, lr=1.0), 100) == 1.0
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "20", "--lr-decay", "cosine") == 0
    last = (run / "log.csv").read_text().strip().splitlines()[-1].split(",")
    # The tiny preset: lr 2e-3, 10 warm-up steps; step 20 ran at 9/10 of the decay, cos -> 0.024.
    assert last[0] == "20" and float(last[2]) == pytest.approx(2e-3 * 0.5 * (1 + np.cos(0.9 * np.pi)))


@pytest.mark.parametrize("argv, message", [
    (["sample", "--checkpoint", "nowhere", "--eta", "-1"], "eta"),
    (["sample", "--checkpoint", "nowhere"], "does not exist"),
    (["train", "--preset", "huge", "--out", "x"], "huge"),
    (["train", "--out", "x", "--steps", "0"], "steps"),
    (["sample", "--sampler", "euler"], "sampler"),
])
def test_bad_arguments_give_one_line_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_too_many_steps_for_the_schedule(idx_folder, tmp_path, capsys):
    assert train_cli(tmp_path / "run", idx_folder, "--steps", "10") == 0
    assert main(["sample", "--checkpoint", str(tmp_path / "run"), "--steps", "1001"]) == 2
    assert "at most T=1000" in capsys.readouterr().err


def test_bench_prints_throughput_and_sampling_times(capsys):
    assert main(["bench", "--preset", "tiny", "--repeats", "1", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "train_images_per_s" in out and "denoiser_images_per_s" in out
    assert main(["bench", "sample", "--preset", "tiny", "--batch-size", "2", "--ddim-steps", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ddpm_steps"] == 1000 and result["ddim_steps"] == 10
    assert result["ratio"] == result["ddpm_s"] / result["ddim_s"] and result["ratio"] > 5
    assert len(result["ddim_runs_s"]) == 4 and result["ddim_s"] == statistics.median(result["ddim_runs_s"])


def test_eval_grid_writes_markdown_and_json(idx_folder, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "10") == 0
    out = tmp_path / "grid"
    assert main(["eval-grid", "--checkpoint", str(run), "--n", "8", "--steps", "2,5", "--etas", "0,1",
                 "--no-ddpm", "--out", str(out)]) == 0
    rows = json.loads((tmp_path / "grid.json").read_text())["rows"]
    assert [(r["eta"], r["steps"]) for r in rows] == [(0.0, 2), (0.0, 5), (1.0, 2), (1.0, 5)]
    table = (tmp_path / "grid.md").read_text()
    assert "| DDIM, eta = 0 |" in table and "S = 5" in table and "x0 clipped" in table
    assert main(["eval-grid", "--checkpoint", str(run), "--n", "8", "--steps", "5", "--etas", "0",
                 "--no-ddpm", "--no-clip", "--out", str(out)]) == 0
    rows = json.loads((tmp_path / "grid.json").read_text())["rows"]
    assert [r["clip_x0"] for r in rows] == [False] and "x0 not clipped" in (tmp_path / "grid.md").read_text()


def test_export_keeps_the_ema_alone_and_loads(idx_folder, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "10", "--fid-every", "5", "--fid-images", "8") == 0
    out = tmp_path / "shipped"
    assert main(["export", "--checkpoint", str(run), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"weights.safetensors", "config.json", "log.csv", "fid.csv", "record.json",
                                         "checksums.json"}
    record = json.loads((out / "record.json").read_text())
    assert record["step"] == 10 and record["command"].startswith("mnistdiff export")
    exported, _, _ = load_checkpoint(out)
    original, _, _ = load_checkpoint(run)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 700])
    torch.testing.assert_close(exported(x, t), original(x, t))
    with pytest.raises(ValueError, match="EMA"):
        load_checkpoint(out, ema=False)
    assert main(["plot-fid", "--run", str(out), "--out", str(tmp_path / "curve.png")]) == 0
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_missing_shipped_model_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(loading, "DEFAULT_MODEL", tmp_path / "nothing")
    assert main(["sample", "--out", str(tmp_path / "x.png")]) == 2
    assert "pass --checkpoint" in capsys.readouterr().err


def test_same_seed_gives_the_same_run(idx_folder, tmp_path):
    torch.manual_seed(123)  # whatever the global state, the run's seed decides
    assert train_cli(tmp_path / "a", idx_folder, "--steps", "3") == 0
    torch.randn(1000)
    assert train_cli(tmp_path / "b", idx_folder, "--steps", "3") == 0
    _, a = loading.read(loading.find(tmp_path / "a"))
    _, b = loading.read(loading.find(tmp_path / "b"))
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], atol=1e-6, rtol=1e-5)
