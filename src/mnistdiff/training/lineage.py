"""A model trained in stages: an exported model, then a run started from it with --init-from.

The exported continuation keeps the whole history: the base's log.csv and fid.csv rows first, the
run's after them with steps and seconds counted on from where the base stopped, and the base's
record under "base".
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mnistdiff import files

LOGS = ("log.csv", "fid.csv")


def check_base(base: Path, run_config: dict) -> dict:
    """The base's record, after checking that the run started from exactly these weights."""
    started = run_config.get("init_from")
    if started is None:
        raise ValueError("--base: this run did not start with --init-from")
    have = files.sha256(base / "weights.safetensors")
    if have != started["weights_sha256"]:
        raise ValueError(f"--base: {base} holds other weights than the run started from "
                         f"(SHA-256 {have[:12]}, the run's {started['weights_sha256'][:12]})")
    return json.loads((base / "record.json").read_text())


def joined_log(base_csv: Path, run_csv: Path, base_step: int, base_seconds: float) -> str | None:
    """The base's rows, then the run's with `step` and `elapsed_s` shifted by the base's."""
    base_fields, base_rows = files.read_csv(base_csv, missing_ok=True)
    run_fields, run_rows = files.read_csv(run_csv, missing_ok=True)
    if not run_rows and not base_rows:
        return None
    fields = base_fields or run_fields
    for row in run_rows:
        row["step"] = str(int(row["step"]) + base_step)
        row["elapsed_s"] = f"{float(row['elapsed_s']) + base_seconds:.6g}"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(base_rows + run_rows)
    return out.getvalue()


def joined_logs(base: Path, run: Path, base_record: dict) -> dict[str, str]:
    """log.csv and fid.csv of base and run joined (joined_log), by file name; absent ones left out."""
    seconds = base_seconds(base, base_record)
    logs = {}
    for name in LOGS:
        text = joined_log(base / name, run / name, base_steps(base_record), seconds)
        if text is not None:
            logs[name] = text
    return logs


def base_steps(record: dict) -> int:
    """Steps of the base's whole history: a continued base's record counts its own bases' too."""
    return record.get("steps_in_all", record["step"])


def base_seconds(base: Path, record: dict) -> float:
    """Seconds in optimizer steps of the base's whole history: the sum of its stages' records
    (`training`, down the chain of bases) where each says them, else the last row of its
    log.csv, which for a continued base is already joined."""
    stages = []
    while record is not None:
        stages.append(record.get("training", {}).get("seconds_in_optimizer_steps"))
        record = record.get("base")
    if None not in stages:
        return float(sum(stages))
    _, rows = files.read_csv(base / "log.csv", missing_ok=True)
    return float(rows[-1]["elapsed_s"]) if rows else 0.0
