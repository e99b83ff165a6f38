"""A run's settings: the preset's or its checkpoint's, with the caller's changes, checked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mnistdiff import files, loading
from mnistdiff.diffusion import ScheduleConfig
from mnistdiff.model import get_preset
from mnistdiff.model.presets import MODEL_SETTINGS
from mnistdiff.precision import autocast
from mnistdiff.training import checkpoint


def resolve(preset: str | None, dataset: str | None, resume: Path | None, overrides: dict,
            init_from: Path | None = None, conditional: bool = False) -> dict:
    """The run's full config: the preset's, or on resume the checkpoint's, with `overrides` applied.

    `preset` and `dataset` None: small and mnist for a new run, the run's own on resume (where a
    given one must be the run's).

    `resume`: the checkpoint folder to continue from. With `init_from` (a checkpoint folder) the
    model's shape and schedule are that checkpoint's, except that `blocks` may grow: the run then
    starts from a deeper copy of that model (model/grow.py), and init_from records the old count.
    `conditional` on an unconditional model: allowed with `init_from` (init_from records
    classes 0; the training data sets the count), refused on resume.
    """
    preset, dataset, unet, train, schedule, extra = _starting_point(preset, dataset, resume)
    if init_from is not None:
        dataset, unet, schedule, extra["init_from"] = _continued_from(init_from)
    given = {k: v for k, v in overrides.items() if v is not None}
    model = {k: given.pop(k) for k in MODEL_SETTINGS if k in given}
    _check_model_changes(unet, model, keeps_model=resume is not None or init_from is not None,
                         init_record=extra["init_from"] if init_from is not None else None)
    if conditional and unet.classes == 0:
        if resume is not None:
            raise ValueError("--conditional: the run's model is unconditional; a resumed run keeps it")
        if init_from is not None:
            extra["init_from"]["classes"] = 0  # a conditional model that starts as this one
    unet = replace(unet, **model)
    if unet.preconditioning == "edm" and "min_snr_gamma" not in given:
        given["min_snr_gamma"] = 0.0  # EDM brings its own weights; a preset's Min-SNR is for eps models
    train = replace(train, **given)
    check_settings(train)
    step = checkpoint.step_of(resume) if resume is not None else None
    if step is not None and train.steps < step:
        raise ValueError(f"--steps {train.steps} is below the run's step {step}: nothing to train "
                         f"(pass a larger --steps to continue it)")
    return checkpoint.config_dict(preset, dataset, unet, train, schedule) | extra


def _starting_point(preset: str | None, dataset: str | None, resume: Path | None) -> tuple:
    """(preset, dataset, UNetConfig, TrainConfig, ScheduleConfig, extra): the checkpoint's on resume
    (where a given preset or dataset must be the run's), with where it started if that was from
    another model (extra["init_from"]), else the preset's (default small, on mnist)."""
    if resume is None:
        p = get_preset(preset or "small")
        return preset or "small", dataset or "mnist", p.unet, p.train, ScheduleConfig(), {}
    config, _ = loading.read(resume)
    for flag, given, have in (("preset", preset, config["preset"]), ("dataset", dataset, config["dataset"])):
        if given is not None and given != have:
            raise ValueError(f"--{flag} {given}: the run's is {have}; a resumed run keeps it")
    unet, train, schedule = loading.parse_config(config)
    extra = {k: config[k] for k in ("init_from", "student") if k in config}
    return config["preset"], config["dataset"], unet, train, schedule, extra


def _continued_from(init_from: Path) -> tuple:
    """(dataset, UNetConfig, ScheduleConfig, record) of the checkpoint a run starts from: the record
    says where it is, its step and its weights' SHA-256."""
    source, _ = loading.read(init_from)
    unet, _, schedule = loading.parse_config(source)
    if unet.distilled_steps:
        raise ValueError(f"--init-from {init_from}: a distilled student, not a diffusion model to train on; "
                         f"distil it further with mnistdiff distill --teacher")
    return source["dataset"], unet, schedule, start_record(init_from)


def start_record(init_from: Path) -> dict:
    """What config.json's "init_from" says of the checkpoint a run starts from: where it is, its step
    and its weights' SHA-256."""
    return {"path": str(init_from), "step": checkpoint.step_of(init_from),
            "weights_sha256": files.sha256(init_from / "weights.safetensors")}


def _check_model_changes(unet, model: dict, keeps_model: bool, init_record: dict | None) -> None:
    """Refuse a change of the model's settings where the run keeps its model (resumed or continued),
    except more blocks when starting from another model, which `init_record` then notes."""
    changed = {k: v for k, v in model.items() if getattr(unet, k) != v}
    if init_record is not None and changed.get("blocks", 0) > unet.blocks:
        changed.pop("blocks")  # a deeper model that starts as this one (model/grow.py)
        init_record["blocks"] = unet.blocks
    if changed and keeps_model:
        name = next(iter(changed))
        raise ValueError(f"--{name.replace('_', '-')}: the model's is {getattr(unet, name)!r}; "
                         f"a resumed or continued run keeps it")


def check_settings(cfg) -> None:
    """Refuse settings no run can use before loading any data (TrainConfig checks each value's range)."""
    autocast(cfg.precision)


def resume_from(out: Path, resume: bool, warn: bool = True) -> Path | None:
    """The checkpoint to continue from, falling back past damaged ones; checks --resume fits the folder."""
    root = out / "checkpoints"
    has_checkpoint = (root / "latest").is_file() or any(root.glob("step_*"))
    if resume and not has_checkpoint:
        raise FileNotFoundError(f"--resume: no checkpoint in {out}")
    if has_checkpoint and not resume:
        raise FileExistsError(f"{out} already holds a run: pass --resume to continue it, or another --out")
    return checkpoint.resumable(out, warn=warn) if resume else None
