"""Checkpoints: a folder per save, a `latest` pointer swapped atomically.

    run/checkpoints/step_000500/weights.safetensors   model.* and ema.* tensors
    run/checkpoints/step_000500/config.json           everything to rebuild the model
    run/checkpoints/step_000500/state.safetensors     optimizer tensors, RNG states, data order
    run/checkpoints/step_000500/state.json            step, counters, optimizer settings
    run/checkpoints/step_000500/checksums.json        SHA-256 of the four files above
    run/checkpoints/latest                            the name of the newest folder

A save writes every file into a temporary folder, syncs it to disk, renames it, then replaces
`latest`; a kill at any moment leaves `latest` naming a complete checkpoint. Nothing is
unpickled: the training state is safetensors and JSON.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save as tensor_bytes

from mnistdiff import files, lock
from mnistdiff.diffusion import ScheduleConfig
from mnistdiff.loading import MODEL_FILES, CheckpointError, find, load_json, load_tensors, read
from mnistdiff.model import TrainConfig, UNetConfig
from mnistdiff.training import state as state_io

KEEP = 2
FILES = (*MODEL_FILES, "state.safetensors", "state.json")


def save(run: Path, step: int, model, ema, optimizer, rng: dict, config: dict) -> Path:
    """Write checkpoint `step` of a run and point `latest` at it; refuses non-finite weights."""
    root = run / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a save that was killed half-way
        shutil.rmtree(stale, ignore_errors=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.shadow.state_dict().items()}
    tree, state_tensors = state_io.split({"step": step, "optimizer": optimizer.state_dict(), "rng": rng})
    for name, value in (tensors | state_tensors).items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"refusing to save step {step}: {name} is not finite; "
                                  f"the last good checkpoint stays in {root}")
    final = root / f"step_{step:07d}"
    try:
        with files.atomic_folder(final) as tmp:
            files.write_bytes(tmp / "weights.safetensors", tensor_bytes(tensors))
            files.write_bytes(tmp / "config.json", json.dumps(config, indent=2).encode())
            files.write_bytes(tmp / "state.safetensors", tensor_bytes(state_tensors))
            files.write_bytes(tmp / "state.json", json.dumps(tree).encode())
            files.write_bytes(tmp / files.CHECKSUMS, json.dumps({n: files.sha256(tmp / n) for n in FILES},
                                                                indent=2).encode())
        if not _reads_back(final):  # checked before `latest` moves and anything older goes
            shutil.rmtree(final, ignore_errors=True)
            raise CheckpointError(f"{final}: did not read back whole after writing; not kept")
        _write_pointer(root, final.name)
    except files.NoSpace as err:
        raise CheckpointError(f"{err.strerror}: checkpoint of step {step} not saved; the last good one "
                              f"stays in {root}; free some space and --resume") from err
    _prune(root, final)
    return final


def _write_pointer(root: Path, name: str) -> None:
    files.atomic_write(root / "latest", (name + "\n").encode())


def _prune(root: Path, final: Path) -> None:
    """Keep `final` and the newest older checkpoints that read back whole, KEEP in all.

    A checkpoint a resume skipped as damaged goes, however new; the last good one never does.
    """
    keep = [final]
    for folder in sorted(root.glob("step_*"), key=lambda p: _step_of_name(p) or -1, reverse=True):
        if folder == final:
            continue
        if len(keep) < KEEP and _reads_back(folder):
            keep.append(folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _reads_back(folder: Path) -> bool:
    try:
        read(folder)
        read_state(folder)
        return True
    except (CheckpointError, FileNotFoundError):
        return False


def _step_of_name(folder: Path) -> int | None:
    digits = folder.name.removeprefix("step_")
    return int(digits) if digits.isdigit() else None


def export(run: str | Path, out: str | Path, record: dict, base: str | Path | None = None) -> Path:
    """Copy a run's EMA weights (alone), config and logs into `out`, a folder load_checkpoint reads.

    `base`: the exported model the run started from (--init-from); its logs come first in the
    exported ones and its record goes under "base" (train/lineage.py). The run's sittings
    (train/sittings.py) go under "training" unless `record` has its own.
    """
    from mnistdiff.training import lineage, sittings

    run, out = Path(run), Path(out)
    folder = find(run)
    config, weights = read(folder)
    step = read_state(folder)["step"]
    training = sittings.summary(folder.parent.parent, step) if folder.parent.name == "checkpoints" else None
    if training is not None and "training" not in record:
        record = record | {"training": training}
    if base is not None:
        base_record = lineage.check_base(Path(base), config)
        record = record | {"steps_in_all": lineage.base_steps(base_record) + step, "base": base_record}
        logs = lineage.joined_logs(Path(base), run, base_record)
    else:
        logs = {n: (run / n).read_text() for n in lineage.LOGS if (run / n).is_file()}
    of_run = folder.parent.parent if folder.parent.name == "checkpoints" else folder
    record = {"step": step, "source": folder.name, "run": str(of_run.resolve())} | record
    files.check_output_folder(out)
    with lock.hold(out):  # from the check to the last file written
        check_export_target(out, record["run"])
        return write_model(out, weights["ema"], folder / "config.json", record, logs)


EXPORTED = ("weights.safetensors", "config.json", "record.json", files.CHECKSUMS, "log.csv", "fid.csv")


def check_export_target(out: Path, run: str) -> None:
    """Refuse to export into a run folder, or over files that are not an earlier export of `run`."""
    if (out / "checkpoints").exists() or (out / "sittings.jsonl").exists():
        raise FileExistsError(f"--out {out} holds a training run: export into another folder")
    there = [name for name in EXPORTED if (out / name).exists()]
    if not there:
        return
    try:
        earlier = json.loads((out / "record.json").read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier != run:
        raise FileExistsError(f"--out {out} holds {', '.join(there)}, not an earlier export of {run}: "
                              "export into another folder, or remove them")


def write_model(out: Path, ema: dict[str, torch.Tensor], config: Path, record: dict,
                logs: dict[str, str] | None = None) -> Path:
    """An exported model's folder: `ema` weights alone, a copy of the `config` file, the logs
    (name: text), record.json, and the checksums load_checkpoint verifies."""
    files.check_output_folder(out)
    with lock.hold(out):
        _write_model(out, ema, config, record, logs)
    return out


def _write_model(out: Path, ema: dict[str, torch.Tensor], config: Path, record: dict,
                 logs: dict[str, str] | None) -> None:
    files.atomic_write(out / "weights.safetensors", tensor_bytes({f"ema.{k}": v for k, v in ema.items()}))
    shutil.copy(config, out / "config.json")
    for name, text in (logs or {}).items():
        (out / name).write_text(text)
    (out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    files.record_checksums(out, ["weights.safetensors", "config.json"])


def resumable(run: Path, warn: bool = True) -> Path:
    """The newest checkpoint of a run that reads back whole; warns on stderr about each one skipped."""
    root = run / "checkpoints"
    try:
        candidates = [find(run)]
    except (CheckpointError, FileNotFoundError) as err:
        candidates = []
        if warn:
            print(f"warning: skipped the latest checkpoint: {err}", file=sys.stderr)
    candidates += sorted((p for p in root.glob("step_*") if _step_of_name(p) is not None and p not in candidates),
                         key=_step_of_name, reverse=True)
    for folder in candidates:
        try:
            read(folder)
            read_state(folder)
            return folder
        except (CheckpointError, FileNotFoundError) as err:
            if warn:
                print(f"warning: skipped checkpoint {folder.name}: {err}", file=sys.stderr)
    raise CheckpointError(f"--resume: no checkpoint in {root} reads back whole (see the warnings above)")


def config_dict(preset: str, dataset: str, unet: UNetConfig, train: TrainConfig, schedule: ScheduleConfig) -> dict:
    return {"preset": preset, "dataset": dataset, "unet": asdict(unet), "train": asdict(train),
            "schedule": asdict(schedule)}


def read_state(folder: Path) -> dict:
    """{"step", "optimizer", "rng"} of a checkpoint, from state.safetensors and state.json, checked."""
    try:
        files.verify_checksums(folder, ["state.safetensors", "state.json"])
    except files.ChecksumError as err:
        raise CheckpointError(str(err)) from err
    tree = load_json(folder / "state.json")
    try:
        saved = state_io.join(tree, load_tensors(folder / "state.safetensors"))
        saved["optimizer"]["state"] = {int(k): v for k, v in saved["optimizer"]["state"].items()}
    except KeyError as err:
        raise CheckpointError(f"{folder / 'state.safetensors'}: tensor {err} missing") from err
    except (TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{folder / 'state.json'}: not the training state of a checkpoint") from err
    if not isinstance(saved, dict) or not isinstance(saved.get("step"), int) or "optimizer" not in saved:
        raise CheckpointError(f"{folder}: training state has no step or optimizer")
    return saved


def step_of(folder: Path) -> int | None:
    """The step a checkpoint (or exported model) was saved at, where it says, without unpickling."""
    record = folder / "record.json"
    if record.is_file():
        return load_json(record).get("step")
    if (folder / "state.json").is_file():
        step = load_json(folder / "state.json")
        return step.get("step") if isinstance(step, dict) else None
    return _step_of_name(folder)

