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


def resolve(preset: str, dataset: str, resume: Path | None, overrides: dict, init_from: Path | None = None) -> dict:
    """The run's full config: the preset's, or on resume the checkpoint's, with `overrides` applied.

    `resume`: the checkpoint folder to continue from. With `init_from` (a checkpoint folder) the
    model's shape and schedule are that checkpoint's, except that `blocks` may grow: the run then
    starts from a deeper copy of that model (model/grow.py), and init_from records the old count.
    """
    extra = {}
    if resume is not None:
        config, _ = loading.read(resume)
        unet_cfg, train_cfg, sched_cfg = loading.parse_config(config)
        preset, dataset = config["preset"], config["dataset"]
        extra = {k: config[k] for k in ("init_from",) if k in config}
    else:
        p = get_preset(preset)
        unet_cfg, train_cfg, sched_cfg = p.unet, p.train, ScheduleConfig()
    if init_from is not None:
        source, _ = loading.read(init_from)
        unet_cfg, _, sched_cfg = loading.parse_config(source)
        dataset = source["dataset"]
        extra["init_from"] = {"path": str(init_from), "step": checkpoint.step_of(init_from),
                              "weights_sha256": files.sha256(init_from / "weights.safetensors")}
    given = {k: v for k, v in overrides.items() if v is not None}
    model = {k: given.pop(k) for k in MODEL_SETTINGS if k in given}
    changed = {k: v for k, v in model.items() if getattr(unet_cfg, k) != v}
    if init_from is not None and changed.get("blocks", 0) > unet_cfg.blocks:
        changed.pop("blocks")  # a deeper model that starts as this one (model/grow.py)
        extra["init_from"]["blocks"] = unet_cfg.blocks
    if changed and (resume is not None or init_from is not None):
        name = next(iter(changed))
        raise ValueError(f"--{name.replace('_', '-')}: the model's is {getattr(unet_cfg, name)!r}; "
                         f"a resumed or continued run keeps it")
    unet_cfg = replace(unet_cfg, **model)
    if unet_cfg.preconditioning == "edm" and "min_snr_gamma" not in given:
        given["min_snr_gamma"] = 0.0  # EDM brings its own weights; a preset's Min-SNR is for eps models
    train_cfg = replace(train_cfg, **given)
    check_settings(train_cfg)
    return checkpoint.config_dict(preset, dataset, unet_cfg, train_cfg, sched_cfg) | extra


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
