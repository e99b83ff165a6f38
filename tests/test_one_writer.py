"""One writer per run folder: a second train or export on a folder in use is refused and changes
nothing; a killed writer leaves no stale lock; export writes only into its own earlier exports."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnistdiff import lock
from mnistdiff.cli import main

FAST = ["--preset", "tiny", "--checkpoint-every", "2", "--sample-every", "1000"]
SRC = Path(__file__).resolve().parent.parent / "src"


def one_error(capsys, *words) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("mnistdiff: error: ") and all(w in lines[-1] for w in words), lines
    return lines[-1]


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (the lock file aside) with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != lock.NAME}


def start_training(run: Path, data: Path) -> subprocess.Popen:
    """A training run that goes on until stopped, once it has saved its first checkpoint."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    argv = [sys.executable, "-m", "mnistdiff", "train", *FAST, "--steps", "1000000", "--data-dir", str(data),
            "--out", str(run)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (run / "checkpoints" / "latest").is_file():
        assert proc.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.05)
    return proc


def test_a_second_writer_beside_a_live_run_is_refused_and_a_killed_one_leaves_no_lock(idx_folder, tmp_path, capsys):
    run = tmp_path / "run"
    proc = start_training(run, idx_folder)
    try:
        for extra in ([], ["--resume"]):  # a second run, and a resume beside the live one
            before = (run / "sittings.jsonl").read_bytes()
            assert main(["train", *FAST, "--steps", "4", "--data-dir", str(idx_folder), "--out", str(run),
                         *extra]) == 2
            one_error(capsys, str(run), f"process {proc.pid}")
            assert (run / "sittings.jsonl").read_bytes() == before  # the live run's notes alone
        assert main(["export", "--checkpoint", str(run), "--out", str(run)]) == 2
        one_error(capsys, str(run))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The OS dropped the killed process's lock: the run resumes.
    step = int((run / "checkpoints" / "latest").read_text().strip().removeprefix("step_"))
    assert main(["train", *FAST, "--steps", str(step + 2), "--resume", "--data-dir", str(idx_folder),
                 "--out", str(run)]) == 0
    rows = (run / "log.csv").read_text().splitlines()[1:]
    steps = [int(r.split(",")[0]) for r in rows]
    assert steps == sorted(set(steps))  # no step twice, none out of order


def test_two_writers_in_one_folder_at_once_one_is_refused(tmp_path):
    """Two processes race to lock one folder: exactly one gets it, the other learns its PID."""
    folder = tmp_path / "run"
    folder.mkdir()
    code = ("import sys, time; from mnistdiff import lock\n"
            "try:\n    lock.take(sys.argv[1])\nexcept lock.Busy as e:\n    print(e); sys.exit(2)\n"
            "print('held', flush=True); time.sleep(3)")
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate()[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    winner = procs[[p.returncode for p in procs].index(0)]
    refused = outs[[p.returncode for p in procs].index(2)]
    assert f"process {winner.pid}" in refused and str(folder) in refused


def test_the_lock_is_released_after_a_run_and_held_once_per_process(tmp_path):
    lock.take(tmp_path)
    lock.take(tmp_path)  # this process holds it already
    with lock.hold(tmp_path):
        pass
    assert (tmp_path / lock.NAME).read_text().strip() == str(os.getpid())
    lock.release(tmp_path)
    assert not (tmp_path / lock.NAME).exists()
    code = "import sys; from mnistdiff import lock; lock.take(sys.argv[1])"
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env).returncode == 0


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from conftest import make_idx_folder

    root = tmp_path_factory.mktemp("runs")
    data = make_idx_folder(root / "data")
    for name in ("a", "b"):
        assert main(["train", *FAST, "--steps", "2", "--data-dir", str(data), "--out", str(root / name)]) == 0
    return root / "a", root / "b"


def test_export_refuses_a_run_folder_and_changes_nothing(two_runs, capsys):
    a, b = two_runs
    before = snapshot(b)
    assert main(["export", "--checkpoint", str(a), "--out", str(b)]) == 2
    one_error(capsys, str(b), "holds a training run")
    assert snapshot(b) == before


def test_export_overwrites_only_its_own_earlier_export(two_runs, tmp_path, capsys):
    a, b = two_runs
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # a file export does not write is no obstacle
    assert main(["export", "--checkpoint", str(a), "--out", str(out)]) == 0
    assert json.loads((out / "record.json").read_text())["run"] == str(a.resolve())
    assert main(["export", "--checkpoint", str(a / "checkpoints" / "step_0000002"), "--out", str(out)]) == 0
    before = snapshot(out)
    assert main(["export", "--checkpoint", str(b), "--out", str(out)]) == 2
    one_error(capsys, str(out), "not an earlier export of", str(b.resolve()))
    assert snapshot(out) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "log.csv").write_text("step,loss\n")
    assert main(["export", "--checkpoint", str(a), "--out", str(other)]) == 2
    one_error(capsys, "log.csv")
    assert (other / "log.csv").read_text() == "step,loss\n"


def test_a_folder_that_cannot_hold_the_lock_file_is_a_one_line_error(capsys):
    folder = Path("/sys")  # no new files there, even for root
    try:
        (folder / "probe").touch()
    except OSError:
        pass
    else:
        (folder / "probe").unlink()
        pytest.skip("no folder here that refuses new files")
    assert main(["train", *FAST, "--steps", "2", "--out", str(folder)]) == 2
    one_error(capsys, "/sys: cannot write its lock file")
