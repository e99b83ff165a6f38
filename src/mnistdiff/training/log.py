"""The run's records: its CSV logs, and process 0's schedule of log rows, sample grids, FID checks and
checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

from mnistdiff.training.budget import steps_in_budget, time_left

TRAIN_FIELDS = ["step", "loss", "lr", "images_per_s", "elapsed_s"]
FID_FIELDS = ["step", "elapsed_s", "images", "ddim_steps", "fid_test"]


class CsvLog:
    """Appends rows whose first field is the step; on resume, first drops rows written after the checkpoint."""

    def __init__(self, path: Path, fields: list[str], after_step: int = 0):
        self.path, self.fields = path, fields
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(",".join(fields) + "\n")
        else:
            lines = path.read_text(errors="replace").splitlines(keepends=True)
            whole = [ln for ln in lines[1:] if ln.count(",") == len(fields) - 1 and _step(ln) is not None]
            kept = [ln for ln in whole if _step(ln) <= after_step]
            path.write_text("".join([",".join(fields) + "\n"] + kept))

    def write(self, **row) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([f"{row[k]:.6g}" if isinstance(row[k], float) else row[k] for k in self.fields])


def _step(line: str) -> int | None:
    """The step of a whole row; None for a row a kill cut short (it has no newline or too few fields)."""
    first = line.split(",")[0]
    return int(first) if first.isdigit() and line.endswith("\n") else None


class Logs:
    """Process 0's records: a log.csv row every log_every steps with the speed since the last row,
    fid.csv, sample grids and checkpoints."""

    def __init__(self, run):
        step = run.state["step"]
        self.log = CsvLog(run.out / "log.csv", TRAIN_FIELDS, after_step=step)
        self.fid = CsvLog(run.out / "fid.csv", FID_FIELDS, after_step=step) if run.train_config.fid_every else None
        self.steps, self.seconds = 0, 0.0  # of training since the last row

    def row(self, run, loss: float, lr: float) -> float:
        """Write a log.csv row; returns its images/s."""
        ips = run.train_config.batch_size * self.steps / self.seconds
        self.log.write(step=run.state["step"], loss=loss, lr=lr, images_per_s=ips, elapsed_s=run.state["elapsed_s"])
        self.steps, self.seconds = 0, 0.0
        return ips

    def after_step(self, run, loss: float, lr: float, seconds: float, bar, deadline: float) -> bool:
        """Log row, sample grid, FID check, checkpoint, as each falls due; True if it saved."""
        settings, step = run.train_config, run.state["step"]
        self.steps, self.seconds = self.steps + 1, self.seconds + seconds
        if step % settings.log_every == 0 or step == 1:
            ips = self.row(run, loss, lr)
            seconds_left = deadline - run.clock()
            # The bar's total is the step the run will stop at, so that its ETA honours --minutes.
            bar.total = steps_in_budget(step, settings.steps, seconds_left, ips / settings.batch_size)
            bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{ips:.0f}", **time_left(seconds_left))
        if step % settings.sample_every == 0:
            run.sample_grid()
        if self.fid and step % settings.fid_every == 0:
            self.fid.write(**run.fid_check())
        if step % settings.checkpoint_every == 0:
            run.save()
            return True
        return False
