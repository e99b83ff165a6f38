"""Loading a trained model: finding its checkpoint, reading and checking its files, building the model.

What sampling, FID, the report and the explorer need, and nothing of training: the config and the
weights of a run folder, a checkpoint folder or an exported model, checked against the checksums
recorded beside them and against the model their config describes. Saving, pruning and resuming
are training's (training/checkpoint.py).
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors_from_bytes
from torch import nn

from mnistdiff import files
from mnistdiff.diffusion import Schedule, ScheduleConfig, make_schedule
from mnistdiff.model import TrainConfig, UNet, UNetConfig, precondition
from mnistdiff.model.unet import renamed

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = WEIGHTS / "small-mnist"
# Models shipped beside the default, by name: load_checkpoint(name), find(name) and `--checkpoint name`
# take these folders. A name wins over a folder of that name in the working directory (reach such a
# folder as ./name). An installation may lack a model named here: loading it then says so.
SHIPPED = {"conditional": WEIGHTS / "conditional-mnist",  # class-conditional MNIST (labels, guidance)
           "fast": WEIGHTS / "fast-mnist",  # a 4-step student of the default model (distill/)
           "fast-2": WEIGHTS / "fast2-mnist",  # the next rounds of its distillation: 2 steps
           "fast-1": WEIGHTS / "fast1-mnist"}  # and 1 step
MODEL_FILES = ("weights.safetensors", "config.json")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, damaged, unsafe or does not fit the model."""


def load_checkpoint(path: str | Path | None = None, *, ema: bool = True) -> tuple[nn.Module, Schedule, dict]:
    """(model, schedule, config) from a run folder or checkpoint, or without a path the model shipped
    with the package (a name in SHIPPED, as "conditional": the model shipped by that name); the EMA
    weights unless ema=False. A folder diffusers saved (a pipeline or a UNet2DModel with its scheduler
    config) loads too, behind the same interface.

    The model is in eval mode; model(xt, t) takes xt (B, C, H, W) in [-1, 1] and t (B,) int64
    in 0..T-1 and returns the predicted eps.
    """
    from mnistdiff.external.diffusers import is_diffusers_folder, load_diffusers

    # a folder diffusers saved: its UNet2DModel and scheduler (docs/diffusers.md); a shipped name is ours
    if path not in SHIPPED and is_diffusers_folder(path):
        return load_diffusers(path)
    folder = find(path)
    config, weights = read(folder)  # checked against the checksums recorded beside them
    unet_cfg, _, sched_cfg = parse_config(config)
    schedule = make_schedule(sched_cfg)
    part = "ema" if ema else "model"
    if not weights[part]:
        raise ValueError(f"this checkpoint holds no {part} weights (exported models keep only the EMA)")
    network = UNet(unet_cfg)
    load_weights(network, weights[part], folder / "weights.safetensors")
    model = precondition(network, schedule.alpha_bar)
    return model.eval().requires_grad_(False), schedule, config


def shipped(name: str) -> bool:
    """Whether this installation ships the model of that name in SHIPPED (a wheel may leave one out)."""
    return (SHIPPED[name] / "weights.safetensors").is_file()


def find(path: str | Path | None) -> Path:
    """The checkpoint folder for a run folder, a checkpoint folder or a file inside one;
    None means the model shipped with the package, a name in SHIPPED the model shipped by that name."""
    name = path if isinstance(path, str) and path in SHIPPED else None
    path = given = SHIPPED[name] if name else Path(path) if path is not None else DEFAULT_MODEL
    if path.is_file():
        path = path.parent
    if (path / "checkpoints" / "latest").is_file():
        path = path / "checkpoints"
    if (path / "latest").is_file():
        pointer = path / "latest"
        try:
            name = pointer.read_bytes().decode().strip()
        except UnicodeDecodeError as err:
            raise CheckpointError(f"{pointer}: not a checkpoint name (not UTF-8 text)") from err
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise CheckpointError(f"{pointer}: {name[:40]!r} is not the name of a checkpoint folder")
        path = path / name
        if not path.is_dir():
            raise CheckpointError(f"{pointer} names {path.name}, which does not exist")
    if not (path / "weights.safetensors").is_file() or not (path / "config.json").is_file():
        if path == DEFAULT_MODEL or name:
            raise FileNotFoundError(f"no {name or 'trained'} model is shipped in this installation: pass --checkpoint")
        missing = [n for n in MODEL_FILES if not (path / n).is_file()]
        if given.is_file():  # named by the file, not by its folder (which may be ".")
            raise FileNotFoundError(f"{given} is not a checkpoint: a file, whose folder {path.resolve()} has no "
                                    f"{' and no '.join(missing)} (pass a run folder, a checkpoint folder or a file in one)")
        raise FileNotFoundError(f"no checkpoint at {path} ({' and '.join(missing)} missing)")
    return path


def read(folder: Path) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """The config and the `model` and `ema` state dicts of a checkpoint folder, checked."""
    try:
        files.verify_checksums(folder, list(MODEL_FILES))
    except files.ChecksumError as err:
        raise CheckpointError(str(err)) from err
    config = load_json(folder / "config.json")
    _check_config(config, folder / "config.json")
    weights: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}}
    for key, value in load_tensors(folder / "weights.safetensors").items():
        part, _, name = key.partition(".")
        if part not in weights or not name:
            raise CheckpointError(f"{folder / 'weights.safetensors'}: unexpected tensor {key!r}")
        weights[part][name] = value
    weights = {part: renamed(tensors) for part, tensors in weights.items()}  # older checkpoints' names
    if not weights["ema"]:
        raise CheckpointError(f"{folder / 'weights.safetensors'}: holds no ema.* tensors")
    with torch.device("meta"):  # shapes alone, no memory
        model = UNet(parse_config(config)[0])
    for part in ("model", "ema"):
        if weights[part]:
            check_fit(model, weights[part], folder / "weights.safetensors")
    return config, weights


def parse_config(config: dict) -> tuple[UNetConfig, TrainConfig, ScheduleConfig]:
    unet = {k: tuple(v) if isinstance(v, list) else v for k, v in config["unet"].items()}
    return UNetConfig(**unet), TrainConfig(**config["train"]), ScheduleConfig(**config["schedule"])


def _check_config(config, path: Path) -> None:
    """Raise CheckpointError unless `config` has every section, with known fields of the right types."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    for key in ("preset", "dataset"):
        if not isinstance(config.get(key), str):
            raise CheckpointError(f"{path}: no {key!r} name")
    for key, cls in (("unet", UNetConfig), ("train", TrainConfig), ("schedule", ScheduleConfig)):
        section = config.get(key)
        if not isinstance(section, dict):
            raise CheckpointError(f"{path}: no {key!r} section")
        known = {f.name: getattr(cls(), f.name) for f in fields(cls)}
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise CheckpointError(f"{path}: unknown {key} field {unknown[0]!r}")
        # A field missing from the file was added after it was written: it keeps its default.
        for name, value in section.items():
            if not _fits(value, known[name]):
                raise CheckpointError(f"{path}: {key}.{name} is {value!r}, expected a value like {known[name]!r}")
    try:
        parse_config(config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from err


def _fits(value, default) -> bool:
    """Whether a JSON value can stand for a config field whose default is `default`."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, tuple):
        return isinstance(value, list) and all(_fits(v, 0) and v >= 0 for v in value)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    return isinstance(value, type(default))


def load_json(path: Path):
    """A JSON file's content, or CheckpointError naming `path`."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not UTF-8 text (byte {err.start})") from err
    except ValueError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, or CheckpointError naming `path`."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    payload = path.read_bytes()
    if not payload:
        raise CheckpointError(f"{path}: empty file")
    try:
        return load_tensors_from_bytes(payload)
    except Exception as err:  # safetensors reports a damaged file with its own error type
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt: {err})") from err


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """model.load_state_dict, with a one-line CheckpointError naming `path` for a missing or misshapen tensor."""
    check_fit(model, weights, path)
    model.load_state_dict(weights)


def check_fit(model: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """Raise CheckpointError naming `path` unless `weights` has exactly the model's tensors and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise CheckpointError(f"{path}: does not fit the model its config describes ({what}, "
                              f"{len(missing)} missing, {len(extra)} unexpected)")
    for name, value in weights.items():
        if value.shape != expected[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {tuple(value.shape)}, the model needs "
                                  f"{tuple(expected[name].shape)}")
