"""A student run's config and loss: what `distill` adds to the training loop, which runs it unchanged.

A student's config.json is its teacher's, with the network's preconditioning and `distilled_steps` set
(model/unet.py), the run's TrainConfig, and a record of how it was made:

    "student": {"method": "progressive", "steps": 4, "teacher": {"path": ..., "sha256": ...}}

("levels" for consistency; "trajectories", the recording's path, n and levels, and "own_states", the
share of steps from the student's own states, for trajectory). The
student starts from the teacher's EMA weights, or from another student's (`init_from`, recorded as a
training run's is); on a resume the teacher is read again from its path and must still have the
weights it had (their SHA-256), and a recording must still be the one the run began with.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch import nn

from mnistdiff import files, loading
from mnistdiff.diffusion import make_schedule
from mnistdiff.distill.consistency import DEFAULT_LEVELS, ConsistencyLoss, check_levels
from mnistdiff.distill.progressive import ProgressiveLoss, check_steps
from mnistdiff.distill.trajectory import TrajectoryLoss, positions
from mnistdiff.model import TrainConfig
from mnistdiff.model.unet import UNetConfig

METHODS = ("progressive", "consistency", "trajectory")
# Starting settings, not yet tuned (docs/distillation.md): a round of 2000 steps, annealed to 0 at
# --steps or --minutes; the consistency target is the run's EMA, at Song et al.'s target decay.
_COMMON = TrainConfig(steps=2000, batch_size=64, lr=1e-4, warmup=100, lr_decay="cosine", precision="auto",
                      sample_every=500, checkpoint_every=500)
DEFAULTS = {"progressive": _COMMON, "consistency": replace(_COMMON, ema_decay=0.95), "trajectory": _COMMON}


def student_unet(teacher: UNetConfig, method: str, steps: int, T: int) -> UNetConfig:
    """The student's network: the teacher's, predicting what `method` needs, or ValueError in one line."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
    if teacher.classes:
        raise ValueError("distillation takes an unconditional teacher; this one is class-conditional")
    if method == "progressive":
        check_steps(steps, T)
        if teacher.distilled_steps not in (0, 2 * steps):
            raise ValueError(f"the teacher is a student of {teacher.distilled_steps} steps: its student takes "
                             f"half as many, --student-steps {teacher.distilled_steps // 2}")
        if teacher.preconditioning == "edm":  # predicts x0 well at every level already
            return replace(teacher, distilled_steps=steps, distilled_by=method)
        return replace(teacher, preconditioning="v", distilled_steps=steps, distilled_by=method)
    if teacher.distilled_steps:
        raise ValueError(f"{method} distillation follows the teacher's ODE: take a teacher that is not itself "
                         f"a student")
    if method == "trajectory":
        return replace(teacher, preconditioning="edm" if teacher.preconditioning == "edm" else "v",
                       distilled_steps=steps, distilled_by=method)
    if not 1 <= steps <= T:
        raise ValueError(f"--student-steps must be from 1 to T = {T}, got {steps}")
    return replace(teacher, preconditioning="consistency", distilled_steps=steps, distilled_by=method)


def student_config(method: str, teacher: str | Path | None, steps: int, levels: int = DEFAULT_LEVELS,
                   overrides: dict | None = None, trajectories: str | Path | None = None,
                   init_from: str | Path | None = None, own_states: float | None = None) -> tuple[dict, Path]:
    """(config, folder of the weights it starts from) of a new student run of `teacher` (None: the
    shipped model; for trajectory, the recording's teacher), which starts from the teacher's weights or
    from `init_from`'s, a student with the same network. `own_states`: trajectory's (TrajectoryLoss)."""
    manifest = None
    if method == "trajectory":
        teacher, manifest = _recording(trajectories, teacher)
    elif trajectories is not None or own_states is not None:
        raise ValueError("--trajectories and --own-states: only the trajectory method learns recorded trajectories")
    if own_states is not None and not 0 <= own_states <= 1:
        raise ValueError(f"--own-states is a share of the batch, from 0 to 1, got {own_states}")
    folder = loading.find(teacher)
    config, _ = loading.read(folder)
    unet, _, schedule = loading.parse_config(config)
    built = make_schedule(schedule)
    T = built.T
    unet = student_unet(unet, method, steps, T)
    if method == "consistency":
        check_levels(levels, T)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    train = replace(DEFAULTS[method], **({"grid_steps": steps, "fid_steps": steps} | given))
    if max(train.grid_steps, train.fid_steps) > steps:
        raise ValueError(f"--grid-steps and --fid-steps: a student of {steps} step(s) samples in at most {steps}")
    # A recording's manifest names its teacher, whose weights _recording has just checked against it.
    teacher_record = manifest["teacher"] if manifest is not None else {
        "path": str(folder.resolve()), "sha256": files.sha256(folder / "weights.safetensors")}
    record = {"method": method, "steps": steps, "teacher": teacher_record}
    if method == "consistency":
        record["levels"] = levels
    if manifest is not None:
        positions(steps, manifest["levels"], built)
        record["trajectories"] = {"path": str(Path(trajectories).resolve()), "n": manifest["n"],
                                  "levels": manifest["levels"]}
        record["own_states"] = own_states or 0.0
    from mnistdiff.training.checkpoint import config_dict
    from mnistdiff.training.settings import start_record

    config = config_dict(config["preset"], config["dataset"], unet, train, schedule) | {"student": record}
    if init_from is None:
        return config, folder
    source = loading.find(init_from)
    start, _ = loading.read(source)
    if replace(loading.parse_config(start)[0], distilled_steps=steps, distilled_by=method) != unet:
        raise ValueError(f"--init-from {init_from}: a student starts from a student with the same network "
                         f"(a {unet.preconditioning} student of this teacher), not this model")
    config["init_from"] = start_record(source)
    return config, source


def _recording(trajectories: str | Path | None, teacher: str | Path | None) -> tuple[str, dict]:
    """(teacher path, manifest) of the recording a trajectory student learns; `teacher`, if given,
    must be the one that recorded it."""
    from mnistdiff.distill.trajectories import read_manifest

    if trajectories is None:
        raise ValueError("the trajectory method learns recorded trajectories: pass --trajectories, a folder "
                         "that mnistdiff trajectories wrote")
    manifest = read_manifest(trajectories)
    recorded = manifest["teacher"]["path"]
    if teacher is not None and str(loading.find(teacher).resolve()) != recorded:
        raise ValueError(f"--teacher {teacher}: the trajectories in {trajectories} were recorded from {recorded}")
    if files.sha256(loading.find(recorded) / "weights.safetensors") != manifest["teacher"]["sha256"]:
        raise loading.CheckpointError(f"the teacher {recorded} holds other weights than when {trajectories} "
                                      f"was recorded: record the trajectories again")
    return recorded, manifest


def check_same_student(config: dict, method: str | None, teacher, steps: int | None, levels: int | None,
                       trajectories=None, own_states: float | None = None) -> None:
    """On --resume: refuse a method, teacher, step count, grid, recording or share of own states other
    than the run's."""
    record = config["student"]
    learns = record.get("trajectories", {}).get("path")
    if trajectories is not None and str(Path(trajectories).resolve()) != learns:
        raise ValueError(f"--trajectories {trajectories}: the run learns {learns}; a resumed run keeps it")
    for flag, given, have in (("method", method, record["method"]), ("student-steps", steps, record["steps"]),
                              ("levels", levels, record.get("levels")),
                              ("own-states", own_states, record.get("own_states", 0.0))):
        if given is not None and given != have:
            raise ValueError(f"--{flag} {given}: the run's is {have}; a resumed run keeps it")
    if teacher is not None and str(loading.find(teacher).resolve()) != record["teacher"]["path"]:
        raise ValueError(f"--teacher {teacher}: the run's teacher is {record['teacher']['path']}; "
                         f"a resumed run keeps it")


def load_teacher(record: dict, device) -> nn.Module:
    """The teacher a student record names, as eps, frozen; CheckpointError if its weights have changed."""
    folder = Path(record["path"])
    if not (folder / "weights.safetensors").is_file():
        raise FileNotFoundError(f"the teacher {folder} is gone: a student run needs its teacher to continue")
    if files.sha256(folder / "weights.safetensors") != record["sha256"]:
        raise loading.CheckpointError(f"the teacher {folder} holds other weights than when the run began")
    model, _, _ = loading.load_checkpoint(folder)
    return model.to(device)


def student_loss(config: dict, run) -> ProgressiveLoss | ConsistencyLoss | TrajectoryLoss:
    """The loss of a student run (training/loop.Run): its method's, holding the frozen teacher; the
    consistency target is the run's EMA model."""
    record = config["student"]
    if record["method"] == "trajectory":
        from mnistdiff.distill.trajectories import load

        states, manifest = load(record["trajectories"]["path"])
        if (manifest["n"], manifest["levels"], manifest["teacher"]) != (
                record["trajectories"]["n"], record["trajectories"]["levels"], record["teacher"]):
            raise loading.CheckpointError(f"{record['trajectories']['path']} holds another recording than when "
                                          f"the run began")
        return TrajectoryLoss(states, manifest["levels"], record["steps"], record.get("own_states", 0.0),
                              run.ema_denoiser)
    teacher = load_teacher(record["teacher"], run.device)
    if record["method"] == "progressive":
        return ProgressiveLoss(teacher, record["steps"])
    return ConsistencyLoss(teacher, run.ema_denoiser, record["levels"])


def distill(out: str | Path, *, method: str | None = None, teacher: str | Path | None = None,
            student_steps: int | None = None, levels: int | None = None, trajectories: str | Path | None = None,
            own_states: float | None = None, resume: bool = False, **options) -> Path:
    """Distil `teacher` (None: the shipped model) into a student of `student_steps` steps by `method`
    ("progressive", "consistency" or "trajectory"), trained by training.train in run folder `out`;
    returns the last checkpoint folder. `levels`: the consistency grid's (default 40). `trajectories`:
    the recording (distill/trajectories.py) a trajectory student learns, whose teacher it is;
    `own_states` (default 0), the share of its steps taken from the student's own states (TrajectoryLoss).
    `options` are train()'s: minutes, device, data_dir, progress, command, clock, compile, init_from
    (a student with the same network to start from), and TrainConfig fields (steps, batch_size, lr,
    ema_decay, checkpoint_every, fid_every, ...). With `resume`, the run's own method, teacher and
    steps continue.
    """
    from mnistdiff.training import train

    if not resume and (method is None or student_steps is None):
        raise ValueError("a new student needs --method and --student-steps")
    if not resume and levels is None:
        levels = DEFAULT_LEVELS
    student = {"method": method, "teacher": teacher, "steps": student_steps, "levels": levels,
               "trajectories": trajectories, "own_states": own_states}
    return train(out, resume=resume, student=student, **options)


def progressive_rounds(out: str | Path, *, student_steps: int, down_to: int, teacher: str | Path | None = None,
                       resume: bool = False, **options) -> Path:
    """Progressive distillation in rounds (Salimans & Ho 2022, Algorithm 2's outer loop): students of
    `student_steps`, half as many, ... down to `down_to` steps, each in out/steps-N with the same
    `options` (distill's), each round's student the next round's teacher; returns the last checkpoint.
    With `resume`, a round whose next round has begun is done, and the latest round continues."""
    if down_to > student_steps or down_to & (down_to - 1):
        raise ValueError(f"--down-to must be a power of two no more than --student-steps {student_steps}, "
                         f"got {down_to}")
    out, steps, final = Path(out), student_steps, None
    while steps >= down_to:
        folder, later = out / f"steps-{steps:04d}", out / f"steps-{steps // 2:04d}"
        if not (resume and steps > down_to and later.is_dir()):
            begun = resume and (folder / "checkpoints").is_dir()
            final = distill(folder, method="progressive", teacher=None if begun else teacher,
                            student_steps=steps, resume=begun, **options)
        teacher, steps = folder, steps // 2
    return final
