"""The run's CSV logs."""

from __future__ import annotations

import csv
from pathlib import Path

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
