"""Samplers: plain functions that call whatever `model(xt, t) -> eps` they are given.

Every sampler has one signature,

    fn(model, x, schedule, levels, *, generator=None, clip_x0=False, callback=None, progress=False, **options)

and denoises x from levels[0] down the list `levels` builds (descending, ending with -1 for clean
data); callback(t, x, x0_pred) sees each step. SAMPLERS names them; register() adds one.

A sampler may carry three attributes, read by sampler_levels() for generate(), the CLI and the
explorer: `spacing`, its default grid (else "uniform"); `evaluations(n)`, its model evaluations over
n steps (else n); `every_step`, true for a sampler that takes no grid but all T levels (DDPM).

A conditional model takes labels through Guided(model, labels, scale), which is such a `model(xt, t)`
(classifier-free guidance, guidance.py).
"""

from __future__ import annotations

from collections.abc import Callable

from mnistdiff.samplers.consistency import sample_consistency
from mnistdiff.samplers.ddim import ddim_invert, ddim_update, sample_ddim
from mnistdiff.samplers.ddpm import ddpm_step, sample_ddpm
from mnistdiff.samplers.dpm_solver import sample_dpm_solver
from mnistdiff.samplers.dpm_solver_sde import sample_dpm_solver_sde
from mnistdiff.samplers.guidance import DEFAULT_GUIDANCE, Guided
from mnistdiff.samplers.heun import sample_edm, sample_heun
from mnistdiff.samplers.levels import SPACINGS, levels

SAMPLERS: dict[str, Callable] = {"ddpm": sample_ddpm, "ddim": sample_ddim, "dpm-solver": sample_dpm_solver,
                                 "heun": sample_heun, "edm": sample_edm, "dpm-solver-sde": sample_dpm_solver_sde,
                                 "consistency": sample_consistency}


DEFAULT_STEPS = 50
# What generate() and the CLI sample with when no sampler is named: the lowest FID per model call in the
# quality-per-call table (docs/sampling.md). DDIM, deterministic, stays the one that inverts.
DEFAULT_SAMPLER = "dpm-solver-sde"


def grid_steps(name: str, steps: int | None, T: int) -> int:
    """How many steps SAMPLERS[name] takes for at most `steps` model evaluations (None: DEFAULT_STEPS, or
    all T for a sampler marked `every_step`): Heun's 2n - 1 evaluations make 10 evaluations 5 steps."""
    fn = SAMPLERS[name]
    if steps is None:
        steps = T if getattr(fn, "every_step", False) else DEFAULT_STEPS
    count = getattr(fn, "evaluations", lambda n: n)
    low, high = min(steps, 1), steps  # the most steps within budget, by bisection: count(n) grows with n
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if count(mid) <= steps else (low, mid - 1)
    return low


def steps_taken(name: str, steps: int | None, T: int) -> int:
    """The model evaluations SAMPLERS[name] makes when asked for `steps` (None: DEFAULT_STEPS): every
    one of the T steps for a sampler that takes no other grid (marked `every_step`, as DDPM)."""
    fn = SAMPLERS[name]
    if getattr(fn, "every_step", False):
        return T
    return getattr(fn, "evaluations", lambda n: n)(grid_steps(name, steps, T))


def default_spacing(name: str) -> str:
    """The grid SAMPLERS[name] declares as its own (its `spacing`), else "uniform"."""
    return getattr(SAMPLERS[name], "spacing", "uniform")


def sampler_levels(name: str, steps: int | None, schedule, spacing: str | None = None,
                   t_end: int | None = None) -> list[int]:
    """The levels SAMPLERS[name] walks for `steps` model evaluations (None: its default) on `spacing`
    (None: its own): what generate(), the CLI and the explorer give it."""
    return levels(grid_steps(name, steps, schedule.T), schedule, spacing or default_spacing(name), t_end)


def default_steps(name: str, T: int) -> int:
    """The model evaluations of SAMPLERS[name] when none are asked for."""
    return steps_taken(name, None, T)


def register(name: str, fn: Callable) -> None:
    """Make `fn` (with the samplers' signature) available to generate() and the CLI as `name`."""
    SAMPLERS[name] = fn


__all__ = ["DEFAULT_GUIDANCE", "DEFAULT_SAMPLER", "DEFAULT_STEPS", "Guided", "SAMPLERS", "SPACINGS", "ddim_invert", "ddim_update", "ddpm_step", "default_spacing",
           "default_steps", "grid_steps", "levels", "register", "sample_consistency", "sample_ddim", "sample_ddpm", "sample_dpm_solver",
           "sample_dpm_solver_sde", "sample_edm", "sample_heun", "sampler_levels", "steps_taken"]
