"""benchmarks/students.py end to end on tiny students of a tiny model (its numbers mean nothing)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEACHER = Path(__file__).parent / "data" / "tiny-old-checkpoint"


def test_students_are_scored_at_their_steps_timed_beside_the_teacher_and_their_rounds_join(idx_folder, tmp_path):
    from mnistdiff.distill import progressive_rounds

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from students import main

    rounds = tmp_path / "progressive"
    progressive_rounds(rounds, teacher=TEACHER, student_steps=2, down_to=1, steps=2, batch_size=4, grid_images=2,
                       fid_every=2, fid_images=10, precision="fp32", data_dir=idx_folder, progress=False)
    out = tmp_path / "students"
    argv = ["--students", f"{rounds / 'steps-0002'},{rounds / 'steps-0001'}", "--teacher", str(TEACHER),
            "--teacher-fid", "--steps", "1,2,4", "--n", "12", "--timing-batch", "2", "--repeats", "1",
            "--curves", str(rounds), "--data-dir", str(idx_folder), "--precision", "fp32", "--device", "cpu",
            "--out", str(out)]
    main(argv)
    record = json.loads(out.with_suffix(".json").read_text())
    two, one = f"{rounds / 'steps-0002'} (progressive, 2-step)", f"{rounds / 'steps-0001'} (progressive, 1-step)"
    assert [(r["model"], r["steps"]) for r in record["rows"]] == [("teacher, DDIM-50", 50), (two, 1), (two, 2),
                                                                  (one, 1)]  # no 4: more than they take
    for r in record["rows"]:
        assert r["n"] == 12 and 0 <= r["precision"] <= 1 and r["fid_test"] >= 0
    assert [sorted(t["student_s"]) for t in record["timing"]] == [["1", "2"], ["1"]]
    assert all(t["teacher_s"] > 0 and t["batch_size"] == 2 for t in record["timing"])
    points = record["curves"][str(rounds)]  # (minutes, steps, FID): the 2-step round's checks, then the 1-step's
    assert [p[1] for p in points] == [2, 1] and points[0][0] < points[1][0]
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "| student, 2 call(s) |" in out.with_suffix(".md").read_text()
    kept = out.with_suffix(".partial.jsonl").read_text()
    main(argv)  # every row kept: nothing sampled again
    assert out.with_suffix(".partial.jsonl").read_text() == kept
