"""The teacher's ODE trajectories, recorded once, for the `trajectory` student (distill/trajectory.py).

`record` draws images with the teacher's best deterministic sampler, DPM-Solver++(2M) on the
trailing grid of `solver_steps` steps, and keeps each image's states at the levels of a `steps`-step
student's trailing grid (T - 1, T - 1 - T/steps, ..., then clean data), which the solver's grid holds
when `solver_steps` is a multiple of `steps`: states (n, steps + 1, C, H, W), float32. The grids
nest, so a recording for 4 steps serves students of 4, 2 and 1 step.

A folder of chunks, each written whole as it is done (chunk-00000.safetensors, ...; chunk k's noise
from seed + k), and manifest.json (teacher, solver, levels, seed, chunk size): a killed recording
loses at most the chunk it was on, and `record` with the same arguments continues it. With a larger
`n` and otherwise the same arguments it grows the recording: the chunks it holds stay (chunk k's noise
depends only on seed + k), a last chunk shorter than the chunk size is drawn again whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from mnistdiff import files, loading
from mnistdiff.runtime import prepare
from mnistdiff.samplers.dpm_solver import sample_dpm_solver
from mnistdiff.samplers.levels import STUDENT_SPACING
from mnistdiff.samplers.levels import levels as grid_levels


def student_grid(steps: int, solver_steps: int, schedule) -> list[int]:
    """The levels of a `steps`-step student's trailing grid, or ValueError unless the solver's grid holds them."""
    if steps < 1 or solver_steps < steps or solver_steps % steps:
        raise ValueError(f"--solver-steps must be a multiple of --student-steps {steps}, got {solver_steps}")
    grid = grid_levels(steps, schedule, STUDENT_SPACING)
    if not set(grid) <= set(grid_levels(solver_steps, schedule, STUDENT_SPACING)):
        raise ValueError(f"the solver's {solver_steps}-step grid does not hold the student's levels {grid}")
    return grid


def record(out: str | Path, *, teacher: str | Path | None = None, n: int, steps: int = 4, solver_steps: int = 20,
           seed: int = 0, chunk: int = 256, precision: str = "fp32", compile: bool = False,
           progress: bool = True) -> Path:
    """Record `n` trajectories of `teacher` (None: the shipped model) in folder `out`; returns it.
    A folder that holds a recording continues it if its manifest matches these arguments, or grows it
    if only `n` is larger."""
    out = Path(out)
    folder = loading.find(teacher)
    model, schedule, _ = loading.load_checkpoint(folder)
    if model.config.distilled_steps or model.config.classes:
        raise ValueError("trajectories are recorded from an unconditional diffusion model, not a student "
                         "or a class-conditional model")
    if n < 1 or chunk < 1:
        raise ValueError("--n and the chunk size must be at least 1")
    grid = student_grid(steps, solver_steps, schedule)
    manifest = {"teacher": {"path": str(folder.resolve()), "sha256": files.sha256(folder / "weights.safetensors")},
                "sampler": "dpm-solver", "spacing": STUDENT_SPACING, "solver_steps": solver_steps, "clip_x0": True,
                "levels": grid, "seed": seed, "chunk": chunk, "n": n}
    _start(out, manifest)
    shape = (model.config.in_channels, model.config.image_size, model.config.image_size)
    run = prepare(model, precision=precision, compile=compile)
    solver_grid = grid_levels(solver_steps, schedule, STUDENT_SPACING)
    chunks = range((n + chunk - 1) // chunk)
    for k in tqdm(chunks, desc=f"{n} trajectories", disable=not progress):
        path = out / f"chunk-{k:05d}.safetensors"
        if path.is_file():
            continue
        g = torch.Generator().manual_seed(seed + k)
        x = torch.randn((min(chunk, n - k * chunk), *shape), generator=g)
        kept = {grid[0]: x}

        def keep(t, x, x0):
            if t in grid:
                kept[t] = x.float().clone()

        sample_dpm_solver(run, x, schedule, solver_grid, clip_x0=True, callback=keep)
        states = torch.stack([kept[t] for t in grid], 1)
        files.atomic_write(path, save({"states": states.contiguous()}))
    return out


def _start(out: Path, manifest: dict) -> None:
    """Write the manifest of a new recording, or check that an existing one is this recording."""
    path = out / "manifest.json"
    if path.is_file():
        have = loading.load_json(path)
        changed = sorted(k for k in manifest if have.get(k) != manifest[k])
        if changed == ["n"] and manifest["n"] > have["n"]:  # grow it: a short last chunk is drawn again whole
            if have["n"] % have["chunk"]:
                (out / f"chunk-{have['n'] // have['chunk']:05d}.safetensors").unlink(missing_ok=True)
            files.atomic_write(path, json.dumps(manifest, indent=2).encode())
        elif changed:
            raise ValueError(f"{out} holds another recording ({', '.join(changed)} differ): give another --out, "
                             f"or only a larger --n to grow it")
        return
    files.check_output_folder(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    files.atomic_write(path, json.dumps(manifest, indent=2).encode())


def read_manifest(folder: str | Path) -> dict:
    """A recording's manifest.json, or FileNotFoundError in one line."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no recorded trajectories (no manifest.json): "
                                f"record them with mnistdiff trajectories --out {folder}")
    return loading.load_json(path)


def load(folder: str | Path) -> tuple[torch.Tensor, dict]:
    """(states (n, levels, C, H, W), manifest) of a recording, or ValueError if it is unfinished."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    count = (manifest["n"] + manifest["chunk"] - 1) // manifest["chunk"]
    paths = [folder / f"chunk-{k:05d}.safetensors" for k in range(count)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{folder}: the recording is unfinished ({len(missing)} of {count} chunks missing); "
                         f"run the same mnistdiff trajectories command again to finish it")
    return torch.cat([load_file(p)["states"] for p in paths]), manifest
