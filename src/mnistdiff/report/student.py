"""The report's section on few-step students of the model: a grid, and for 1, 2 and 4 calls the FID
beside the floor, precision, recall and a batch's sampling time, next to the teacher's DDIM-50 timed in
the same turns from the same noise. A given student serves every count up to its own; the shipped
students serve each count with the one distilled for it (fast, fast-2, fast-1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mnistdiff.images import DIGITS, grid, image_shape, save_png
from mnistdiff.samplers.common import distilled_method, distilled_steps

SHIPPED_NAME = "fast"  # loading.SHIPPED's name of the shipped student: the default
SHIPPED_BY_CALLS = {4: SHIPPED_NAME, 2: "fast-2", 1: "fast-1"}  # the shipped student distilled for each count
TEACHER_STEPS = 50


@dataclass
class Student:
    """The students on the report's device by the calls each serves, where they came from and the
    checksum of their weights; or, with `note`, why the section is left out."""

    models: dict[int, torch.nn.Module] | None = None
    source: str = ""
    checksum: str | None = None
    note: str | None = None


def load(checkpoint: str | Path | None, target: torch.device, dataset: str, shipped_teacher: bool = True) -> Student:
    """The student of `checkpoint` (a run or checkpoint folder, or "fast", the shipped one), or a Student
    whose note says why there is none; shipped_teacher: whether the report's model is the shipped one,
    the shipped student's teacher. A model that is not a student is an error."""
    from mnistdiff import load_checkpoint
    from mnistdiff.loading import find, shipped
    from mnistdiff.report.cache import model_checksum

    if checkpoint is None:
        return Student(note="No student given: --student-checkpoint PATH adds this section.")
    if checkpoint == SHIPPED_NAME and not shipped(SHIPPED_NAME):
        return Student(note="This installation ships no student: --student-checkpoint PATH (a model made by "
                            "`mnistdiff distill`) adds this section.")
    if checkpoint == SHIPPED_NAME and not shipped_teacher:
        return Student(note="The shipped student was distilled from the shipped model, not from this one: "
                            "--student-checkpoint PATH (a student made by `mnistdiff distill --teacher` this "
                            "model) adds this section.")
    model, _, config = load_checkpoint(checkpoint)
    if not distilled_steps(model):
        raise ValueError(f"--student-checkpoint {checkpoint}: not a distilled student (its config has no "
                         "distilled_steps); make one with `mnistdiff distill`")
    if image_shape(config) != DIGITS or config["dataset"] != dataset:
        return Student(note=f"The student {checkpoint} makes {config['dataset']} images: the section needs the "
                            f"1x28x28 {dataset} digits the report's model makes.")
    models = {n: model for n in range(1, distilled_steps(model) + 1)}  # it serves every count up to its own
    names = [checkpoint]
    if checkpoint == SHIPPED_NAME:  # where a shipped student was distilled for a count, it serves that count
        names += [name for n, name in SHIPPED_BY_CALLS.items() if name != SHIPPED_NAME and shipped(name)]
        models |= {n: load_checkpoint(name)[0] for n, name in SHIPPED_BY_CALLS.items() if name in names[1:]}
    source = f"the shipped students ({', '.join(names)})" if checkpoint == SHIPPED_NAME else str(find(checkpoint))
    checksum = "+".join(model_checksum(find(name)) for name in names)
    return Student({n: m.to(target) for n, m in models.items()}, source, checksum)


def section(ctx, student: Student) -> dict:
    """For each count of settings.student_steps the student takes: fid_images from the report's seed,
    scored as the FID rows are; a batch of timing_batch timed beside the teacher's DDIM-50; and a grid
    of the most steps' first images."""
    from mnistdiff.bench import bench_student
    from mnistdiff.evaluation import evaluate
    from mnistdiff.generation import generate

    if student.note:
        return {"available": False, "note": student.note, "files": []}
    s = ctx.settings
    steps = [n for n in s.student_steps if n in student.models]
    rows, images = [], None
    for n in steps:
        images = generate(student.models[n], ctx.schedule, s.fid_images, steps=n, seed=s.seed, batch_size=s.batch_size,
                          precision=s.precision, compile=s.compile, progress=True)
        rows.append({"steps": n, "distilled_steps": distilled_steps(student.models[n]),
                     **evaluate(images, ctx.dataset, ctx.data_dir, seed=s.seed, floors=ctx.floors(s.fid_images))})
    save_png(ctx.out / "student-grid.png", grid(images[:64], nrow=8), scale=2)
    timing = bench_student({n: student.models[n] for n in steps}, getattr(ctx.model, "model", ctx.model),
                           ctx.schedule, teacher_steps=TEACHER_STEPS, batch_size=s.timing_batch, seed=s.seed,
                           precision=s.precision, repeats=s.timing_repeats, compile=s.compile)
    for row in rows:
        row["seconds"] = timing["student_s"][row["steps"]]
    main = student.models[max(student.models)]
    return {"available": True, "model": student.source, "method": distilled_method(main),
            "distilled_steps": distilled_steps(main), "grid_steps": steps[-1], "rows": rows,
            "timing": {k: timing[k] for k in ("batch_size", "teacher_steps", "teacher_s")},
            "files": ["student-grid.png"]}


def rerun_command(s, checkpoint, student_checkpoint, device: torch.device, data_dir: str | None) -> dict[str, str]:
    """The students benchmark's command that reruns the section's table and timing."""
    import shlex

    from mnistdiff.loading import shipped

    if student_checkpoint is None:
        return {}
    students = str(student_checkpoint)
    if student_checkpoint == SHIPPED_NAME:
        students = ",".join(name for name in SHIPPED_BY_CALLS.values() if shipped(name))
    command = ["python", "benchmarks/students.py", "--students", students,
               "--steps", ",".join(map(str, s.student_steps)), "--n", str(s.fid_images),
               "--timing-batch", str(s.timing_batch), "--repeats", str(s.timing_repeats), "--seed", str(s.seed),
               "--precision", s.precision, "--device", device.type, *(["--compile"] if s.compile else []),
               *([] if checkpoint is None else ["--teacher", str(checkpoint)]),
               *([] if data_dir is None else ["--data-dir", data_dir])]
    return {"student table": shlex.join(command)}
