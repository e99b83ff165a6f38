"""A run notes what trained it, and an exported model's record says so without hand edits."""

import csv
import json

import pytest

from mnistdiff import loading
from mnistdiff.cli import main
from mnistdiff.training import checkpoint, sittings

FAST = ["--preset", "tiny", "--checkpoint-every", "10", "--sample-every", "1000"]


def train_cli(out, data_dir, *extra):
    return main(["train", *FAST, "--data-dir", str(data_dir), "--out", str(out), *extra])


def test_an_exported_record_holds_every_sitting_with_its_time_and_speed(idx_folder, tmp_path):
    run, out = tmp_path / "run", tmp_path / "model"
    assert train_cli(run, idx_folder, "--steps", "10") == 0
    assert train_cli(run, idx_folder, "--steps", "20", "--resume") == 0
    noted = sittings.read(run)
    assert [s["from_step"] for s in noted] == [0, 10]
    assert noted[0]["command"].startswith("mnistdiff train") and noted[1]["command"].endswith("--resume")
    assert all(s["machine"] and s["started"] for s in noted)

    assert main(["export", "--checkpoint", str(run), "--out", str(out), "--note", "the cores were idle"]) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["note"] == "the cores were idle"
    training = record["training"]
    assert training["commands"] == [s["command"] for s in noted]
    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["step"]) == 20
    assert training["seconds_in_optimizer_steps"] == float(rows[-1]["elapsed_s"]) > 0
    assert training["median_images_per_s"] > 0

    # Exported at an earlier checkpoint, the record leaves out the sitting that came after it.
    earlier = loading.find(run).parent / "step_0000010"
    assert main(["export", "--checkpoint", str(earlier), "--out", str(tmp_path / "earlier")]) == 0
    training = json.loads((tmp_path / "earlier" / "record.json").read_text())["training"]
    assert [s["from_step"] for s in training["sittings"]] == [0]


def test_a_fresh_start_begins_the_notes_anew_and_a_resume_adds_to_them(tmp_path):
    sittings.note(tmp_path, "mnistdiff train A", 0, None, resumed=False)
    sittings.note(tmp_path, "mnistdiff train B", 0, 5.0, resumed=False)  # A left no checkpoint
    sittings.note(tmp_path, "mnistdiff train B --resume", 40, 5.0, resumed=True)
    assert [(s["command"], s["from_step"], s["minutes"]) for s in sittings.read(tmp_path)] == [
        ("mnistdiff train B", 0, 5.0), ("mnistdiff train B --resume", 40, 5.0)]


def test_a_run_without_notes_or_a_given_training_record_is_exported_as_given(idx_folder, tmp_path):
    run = tmp_path / "run"
    assert train_cli(run, idx_folder, "--steps", "10") == 0
    checkpoint.export(run, tmp_path / "own", {"training": {"note": "by hand"}})
    assert json.loads((tmp_path / "own" / "record.json").read_text())["training"] == {"note": "by hand"}
    (run / sittings.FILE).unlink()  # a run trained before sittings were noted
    checkpoint.export(run, tmp_path / "old", {})
    assert "training" not in json.loads((tmp_path / "old" / "record.json").read_text())


def test_read_csv_gives_the_header_and_rows_as_strings(tmp_path):
    from mnistdiff.files import read_csv

    path = tmp_path / "log.csv"
    path.write_text("step,loss\n1,0.5\n2,0.25\n")
    assert read_csv(path) == (["step", "loss"], [{"step": "1", "loss": "0.5"}, {"step": "2", "loss": "0.25"}])
    assert read_csv(tmp_path / "none.csv", missing_ok=True) == ([], [])
    with pytest.raises(FileNotFoundError):
        read_csv(tmp_path / "none.csv")
