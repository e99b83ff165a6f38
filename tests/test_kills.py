"""SIGKILL a training process at random moments, during checkpoint writes too; each resume goes on,
and the run ends with the weights of a run never killed (training on the CPU is deterministic)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from mnistdiff import load_checkpoint, loading
from mnistdiff.training import checkpoint

STEPS, EVERY = 24, 3
ARGS = ["--preset", "tiny", "--steps", str(STEPS), "--checkpoint-every", str(EVERY), "--sample-every", "1000"]


def start(run: Path, data: Path, resume: bool, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    src = Path(__file__).resolve().parent.parent / "src"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    argv = [sys.executable, "-m", "mnistdiff", "train", *ARGS, *extra, "--data-dir", str(data), "--out", str(run)]
    return subprocess.Popen(argv + (["--resume"] if resume else []), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_later(proc: subprocess.Popen, run: Path, delay_s: float | None) -> str:
    """SIGKILL `proc` `delay_s` seconds after it publishes a new checkpoint (a random moment of
    training, whatever the machine's speed), or with None as soon as a save's temporary folder
    appears (during a checkpoint write); returns what happened."""
    pointer = run / "checkpoints" / "latest"
    before = pointer.read_text() if pointer.is_file() else None
    stale = set((run / "checkpoints").glob(".tmp-*"))  # left by an earlier kill
    deadline = None
    while proc.poll() is None:
        if delay_s is None and set((run / "checkpoints").glob(".tmp-*")) - stale:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return "killed during a save"
        if delay_s is not None and deadline is None and pointer.is_file() and pointer.read_text() != before:
            deadline = time.monotonic() + delay_s
        if deadline is not None and time.monotonic() > deadline:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return "killed"
        time.sleep(0.001)
    return "finished"


def step_of_latest(run: Path) -> int | None:
    """The step of the latest checkpoint, after checking that it loads; None before the first one."""
    if not (run / "checkpoints" / "latest").is_file():
        return None
    folder = loading.find(run)
    load_checkpoint(folder)
    saved = checkpoint.read_state(folder)
    assert folder.name == f"step_{saved['step']:07d}"
    return saved["step"]


def test_sigkill_at_random_moments_then_resume_ends_as_an_unbroken_run(idx_folder, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "killed"
    # The unbroken run too in a process of its own, with the same thread count: bit-equal weights
    # need the same order of floating-point sums.
    unbroken = start(straight, idx_folder, resume=False)
    assert unbroken.wait(timeout=120) == 0, unbroken.stderr.read().decode()[-2000:]
    rng = random.Random(17)
    plan = [None, rng.uniform(0, 0.6), None, rng.uniform(0, 0.6), rng.uniform(0, 0.6)]  # None: during a save
    outcomes, last = [], None
    for delay_s in plan:
        outcomes.append(kill_later(start(run, idx_folder, resume=last is not None), run, delay_s))
        step = step_of_latest(run)
        assert step is None or (step % EVERY == 0 or step == STEPS) and step >= (last or 0)
        last = step if step is not None else last
        if outcomes[-1] == "finished":
            break
    proc = start(run, idx_folder, resume=last is not None)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()[-2000:]
    assert "killed" in outcomes, outcomes
    assert step_of_latest(run) == STEPS
    _, a = loading.read(loading.find(straight))
    _, b = loading.read(loading.find(run))
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)
    state_a, state_b = checkpoint.read_state(loading.find(straight)), checkpoint.read_state(loading.find(run))
    for index, moments in state_a["optimizer"]["state"].items():
        assert torch.equal(moments["exp_avg_sq"], state_b["optimizer"]["state"][index]["exp_avg_sq"])
    rows = lambda r: [line.split(",")[:3] for line in (r / "log.csv").read_text().splitlines()]  # noqa: E731
    assert rows(run) == rows(straight)
    print(outcomes)
