"""Checkpoints: a folder per save, a `latest` pointer swapped atomically.

    run/checkpoints/step_000500/weights.safetensors   model.* and ema.* tensors
    run/checkpoints/step_000500/config.json           everything to rebuild the model
    run/checkpoints/step_000500/state.pt              optimizer, RNG, step
    run/checkpoints/latest                            the name of the newest folder

A save writes into a temporary folder, renames it, then replaces `latest`;
a kill at any moment leaves `latest` naming a complete checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mnistdiff.diffusion import ScheduleConfig
from mnistdiff.model import TrainConfig, UNetConfig

KEEP = 2
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "weights" / "small-mnist"


def save(run: Path, step: int, model, ema, optimizer, rng: dict, config: dict) -> Path:
    root = run / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a save that was killed half-way
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.shadow.state_dict().items()}
    save_file(tensors, tmp / "weights.safetensors")
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": rng}, tmp / "state.pt")
    final = root / f"step_{step:07d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_pointer(root, final.name)
    for old in sorted(root.glob("step_*"))[:-KEEP]:
        shutil.rmtree(old)
    return final


def _write_pointer(root: Path, name: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".latest.")
    with os.fdopen(fd, "w") as f:
        f.write(name + "\n")
    os.replace(tmp, root / "latest")


def export(run: str | Path, out: str | Path, record: dict) -> Path:
    """Copy a run's EMA weights (alone), config and logs into `out`, a folder load_checkpoint reads."""
    folder, out = find(run), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ema = {k: v for k, v in load_file(folder / "weights.safetensors").items() if k.startswith("ema.")}
    save_file(ema, out / "weights.safetensors")
    shutil.copy(folder / "config.json", out / "config.json")
    for log in ("log.csv", "fid.csv"):
        if (Path(run) / log).is_file():
            shutil.copy(Path(run) / log, out / log)
    step = torch.load(folder / "state.pt", weights_only=False)["step"]
    (out / "record.json").write_text(json.dumps({"step": step, "source": folder.name} | record, indent=2) + "\n")
    return out


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find(path: str | Path | None) -> Path:
    """The checkpoint folder for a run folder, a checkpoint folder or a file inside one;
    None means the model shipped with the package."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    if path.is_file():
        path = path.parent
    if (path / "checkpoints" / "latest").is_file():
        path = path / "checkpoints"
    if (path / "latest").is_file():
        path = path / (path / "latest").read_text().strip()
    if not (path / "weights.safetensors").is_file() or not (path / "config.json").is_file():
        raise FileNotFoundError(f"no checkpoint at {path}" if path != DEFAULT_MODEL else
                                "no trained model is shipped in this installation: pass --checkpoint")
    return path


def config_dict(preset: str, dataset: str, unet: UNetConfig, train: TrainConfig, schedule: ScheduleConfig) -> dict:
    return {"preset": preset, "dataset": dataset, "unet": asdict(unet), "train": asdict(train),
            "schedule": asdict(schedule)}


def parse_config(config: dict) -> tuple[UNetConfig, TrainConfig, ScheduleConfig]:
    unet = {k: tuple(v) if isinstance(v, list) else v for k, v in config["unet"].items()}
    return UNetConfig(**unet), TrainConfig(**config["train"]), ScheduleConfig(**config["schedule"])


def read(folder: Path) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """The config and the `model` and `ema` state dicts of a checkpoint folder."""
    config = json.loads((folder / "config.json").read_text())
    weights: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}}
    for key, value in load_file(folder / "weights.safetensors").items():
        part, name = key.split(".", 1)
        weights[part][name] = value
    return config, weights
