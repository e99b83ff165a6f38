"""What trained a run: each start of `train` on a run folder, fresh or resumed, is a sitting.

`train` appends one line per sitting to the run's sittings.jsonl: the command, the commit, the
machine, the time, the step it started from and its time budget. `export` puts them in the
exported model's record under "training", with the seconds in optimizer steps and the median
speed read from the run's log, so a shipped model says how it was made without hand edits.
"""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timezone
from pathlib import Path

from mnistdiff import files
from mnistdiff.provenance import git_commit, machine

FILE = "sittings.jsonl"


def note(run: Path, command: str | None, step: int, minutes: float | None, resumed: bool) -> None:
    """Append this sitting to `run`'s sittings.jsonl; a fresh run starts the file anew (an earlier
    start in the folder left no checkpoint, else the run would have had to be resumed)."""
    row = {"command": command, "commit": git_commit(), "machine": machine(),
           "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "from_step": step,
           "minutes": minutes}
    with open(Path(run) / FILE, "a" if resumed else "w") as f:
        f.write(json.dumps(row) + "\n")


def read(run: Path) -> list[dict]:
    """The sittings noted in `run`, oldest first; none for runs trained before they were noted."""
    path = Path(run) / FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary(run: Path, step: int) -> dict | None:
    """The record's "training" for `run` exported at `step`: the sittings that led to it, their
    commands, and the seconds in optimizer steps and median images/s of its log up to `step`."""
    sittings = [s for s in read(run) if s["from_step"] < step]
    if not sittings:
        return None
    rows = [r for r in files.read_csv(Path(run) / "log.csv", missing_ok=True)[1] if int(r["step"]) <= step]
    training = {"commands": [s["command"] for s in sittings if s["command"]], "sittings": sittings}
    if rows:
        training["seconds_in_optimizer_steps"] = float(rows[-1]["elapsed_s"])  # as logged: 6 digits
        training["median_images_per_s"] = round(statistics.median(float(r["images_per_s"]) for r in rows), 1)
    return training
