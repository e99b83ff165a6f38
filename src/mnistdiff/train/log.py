"""The run's CSV log."""

from __future__ import annotations

import csv
from pathlib import Path

FIELDS = ["step", "loss", "lr", "images_per_s", "elapsed_s"]


class CsvLog:
    """Appends rows to log.csv; on resume, first drops rows written after the checkpoint's step."""

    def __init__(self, path: Path, after_step: int = 0):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(",".join(FIELDS) + "\n")
        else:
            lines = path.read_text().splitlines(keepends=True)
            kept = [ln for ln in lines[1:] if int(ln.split(",")[0]) <= after_step]
            path.write_text("".join(lines[:1] + kept))

    def write(self, **row) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([f"{row[k]:.6g}" if isinstance(row[k], float) else row[k] for k in FIELDS])
