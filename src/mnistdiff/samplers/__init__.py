"""Samplers: plain functions that call whatever `model(xt, t) -> eps` they are given.

Every sampler has one signature,

    fn(model, x, schedule, levels, *, generator=None, clip_x0=False, callback=None, progress=False, **options)

and denoises x from levels[0] down the list `levels` builds (descending, ending with -1 for clean
data); callback(t, x, x0_pred) sees each step. SAMPLERS names them; register() adds one.
"""

from __future__ import annotations

from collections.abc import Callable

from mnistdiff.samplers.ddim import ddim_invert, ddim_update, sample_ddim
from mnistdiff.samplers.ddpm import ddpm_step, sample_ddpm
from mnistdiff.samplers.dpm_solver import sample_dpm_solver
from mnistdiff.samplers.levels import SPACINGS, levels

SAMPLERS: dict[str, Callable] = {"ddpm": sample_ddpm, "ddim": sample_ddim, "dpm-solver": sample_dpm_solver}


DEFAULT_STEPS = 50


def steps_taken(name: str, steps: int | None, T: int) -> int:
    """The model evaluations SAMPLERS[name] makes when asked for `steps` (None: DEFAULT_STEPS): every
    one of the T steps for a sampler that takes no other grid (marked `every_step`, as DDPM)."""
    return T if getattr(SAMPLERS[name], "every_step", False) else (DEFAULT_STEPS if steps is None else steps)


def default_steps(name: str, T: int) -> int:
    """The model evaluations of SAMPLERS[name] when none are asked for."""
    return steps_taken(name, None, T)


def register(name: str, fn: Callable) -> None:
    """Make `fn` (with the samplers' signature) available to generate() and the CLI as `name`."""
    SAMPLERS[name] = fn


__all__ = ["DEFAULT_STEPS", "SAMPLERS", "SPACINGS", "ddim_invert", "ddim_update", "ddpm_step", "default_steps",
           "levels", "register", "sample_ddim", "sample_ddpm", "sample_dpm_solver", "steps_taken"]
