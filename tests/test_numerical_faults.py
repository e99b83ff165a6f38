"""A NaN or inf loss stops training at once, naming the step, and nothing non-finite is ever saved."""

import math

import pytest
import torch

from mnistdiff import loading
from mnistdiff.cli import main
from mnistdiff.training import checkpoint, loop

FAST = ["--preset", "tiny", "--checkpoint-every", "5", "--sample-every", "1000"]


def train(run, data, *extra) -> int:
    return main(["train", *FAST, "--data-dir", str(data), "--out", str(run), *extra])


def all_finite(run) -> bool:
    folders = sorted((run / "checkpoints").glob("step_*"))
    return bool(folders) and all(torch.isfinite(t).all() for f in folders
                                 for part in loading.read(f)[1].values() for t in part.values())


def test_a_diverging_lr_stops_with_the_step_and_keeps_the_last_good_checkpoint(idx_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, idx_folder, "--steps", "10") == 0
    assert train(run, idx_folder, "--steps", "40", "--lr", "1e6", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mnistdiff: error: ") and " at step " in err and "is kept" in err, err
    assert all_finite(run)
    step = checkpoint.read_state(loading.find(run))["step"]
    assert step >= 10 and f"step_{step:07d}" in err


@pytest.fixture
def nan_at_call(monkeypatch):
    """Makes the loss of the given calls of the run's loss NaN (counting from 1)."""
    def install(*bad):
        calls = []
        real = loop.training_loss

        def training_loss(*args, **kwargs):
            loss_fn = real(*args, **kwargs)

            def loss(*args, **kwargs):
                calls.append(1)
                value = loss_fn(*args, **kwargs)
                return value * math.nan if len(calls) in bad else value
            return loss
        monkeypatch.setattr(loop, "training_loss", training_loss)
    return install


def test_a_nan_batch_stops_training_by_default(idx_folder, tmp_path, nan_at_call, capsys):
    nan_at_call(3)
    assert train(tmp_path / "run", idx_folder, "--steps", "8") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "loss is nan at step 3" in err and "no checkpoint was saved yet" in err and "--skip-nonfinite" in err
    assert not list((tmp_path / "run" / "checkpoints").glob("step_*"))


def test_skip_nonfinite_skips_that_many_batches(idx_folder, tmp_path, nan_at_call, capsys):
    nan_at_call(3, 5)
    assert train(tmp_path / "run", idx_folder, "--steps", "8", "--skip-nonfinite", "2") == 0
    err = capsys.readouterr().err
    assert "loss is nan at step 3: batch skipped (1 of 2 allowed)" in err
    assert "batch skipped (2 of 2 allowed)" in err
    saved = checkpoint.read_state(loading.find(tmp_path / "run"))
    assert saved["step"] == 8 and saved["rng"]["skipped"] == 2 and all_finite(tmp_path / "run")
    config, _ = loading.read(loading.find(tmp_path / "run"))
    assert config["train"]["skip_nonfinite"] == 2
    nan_at_call(2, 3, 4)
    assert train(tmp_path / "two", idx_folder, "--steps", "8", "--skip-nonfinite", "2") == 2
    assert "loss is nan at step 2" in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_non_finite_weight_is_never_saved(idx_folder, tmp_path):
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = math.inf
    ema = type("EMA", (), {"shadow": model})()
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(loading.CheckpointError, match="model.weight is not finite"):
        checkpoint.save(tmp_path, 1, model, ema, optimizer, {}, {})
    assert not list((tmp_path / "checkpoints").iterdir())
