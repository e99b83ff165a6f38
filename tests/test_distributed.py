"""Two CPU processes (torchrun, gloo) train as one process with the same global batch and seed does."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnistdiff import loading
from mnistdiff.cli import main
from mnistdiff.training import checkpoint

FAST = ["--preset", "tiny", "--checkpoint-every", "10", "--sample-every", "1000"]
# The two processes sum their halves' gradients in another order than one process does: float
# rounding, nothing more, which Adam's normalisation magnifies where gradients are near zero.
# Measured after 20 steps from scratch: logged losses equal to 6 digits, weights within 2e-5.
LOSS_RTOL, WEIGHT_ATOL = 1e-4, 1e-4


def losses(run: Path) -> dict[int, float]:
    rows = (run / "log.csv").read_text().splitlines()[1:]
    return {int(r.split(",")[0]): float(r.split(",")[1]) for r in rows}


def torchrun(*argv: str) -> subprocess.CompletedProcess:
    src = Path(__file__).resolve().parent.parent / "src"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "mnistdiff", *argv], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
@pytest.mark.parametrize("model", [[], ["--conditional", "--label-dropout", "0.5"]],
                         ids=["unconditional", "conditional"])
def test_two_processes_follow_one_and_checkpoints_move_between_them(model, idx_folder, tmp_path):
    data = ["--data-dir", str(idx_folder), *model]
    straight, chain = tmp_path / "straight", tmp_path / "chain"
    assert main(["train", *FAST, *data, "--steps", "30", "--out", str(straight)]) == 0
    # One process to step 10, two processes on to 20 (resuming one's checkpoint), one again to 30.
    assert main(["train", *FAST, *data, "--steps", "10", "--out", str(chain)]) == 0
    done = torchrun("train", *FAST, *data, "--steps", "20", "--out", str(chain), "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("checkpoint:") == 1  # process 0 alone reports, logs and writes
    config = json.loads((chain / "checkpoints" / "step_0000020" / "config.json").read_text())
    assert config["world_size"] == 2
    by_two = chain / "checkpoints" / "step_0000020"
    shutil.copytree(by_two, tmp_path / "by-two")  # the next run prunes it
    assert main(["train", *FAST, *data, "--steps", "30", "--out", str(chain), "--resume"]) == 0
    assert json.loads((loading.find(chain) / "config.json").read_text())["world_size"] == 1

    a, b = losses(straight), losses(chain)
    assert sorted(a) == sorted(b) == [1, 10, 20, 30]  # no row twice
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=LOSS_RTOL), step
    for mine, theirs in ((tmp_path / "by-two", straight / "checkpoints" / "step_0000020"),
                         (loading.find(chain), loading.find(straight))):
        _, w_mine = loading.read(mine)
        _, w_theirs = loading.read(theirs)
        for part in ("model", "ema"):
            for name, value in w_theirs[part].items():
                torch.testing.assert_close(w_mine[part][name], value, atol=WEIGHT_ATOL, rtol=1e-4)
    assert checkpoint.read_state(tmp_path / "by-two")["step"] == 20


def test_a_batch_that_does_not_split_over_the_processes(idx_folder, tmp_path, monkeypatch, capsys):
    from mnistdiff.training import distributed

    monkeypatch.setattr(distributed, "join", lambda device: distributed.Group(0, 3, torch.device("cpu")))
    assert main(["train", *FAST, "--data-dir", str(idx_folder), "--out", str(tmp_path / "r")]) == 2
    assert "does not split evenly over 3 processes" in capsys.readouterr().err
