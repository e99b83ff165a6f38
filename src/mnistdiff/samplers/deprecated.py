"""The sampler API before `levels` and the common signature, kept for one release; each name warns once."""

from __future__ import annotations

from mnistdiff.diffusion import Schedule, linear_schedule
from mnistdiff.samplers.common import warn_once
from mnistdiff.samplers.ddim import sample_ddim
from mnistdiff.samplers.ddpm import sample_ddpm
from mnistdiff.samplers.dpm_solver import sample_dpm_solver
from mnistdiff.samplers.levels import levels

def timesteps(n_steps: int, T: int, spacing: str = "uniform", t_end: int = 0) -> list[int]:
    """The ascending timesteps of levels(n_steps, ...), without the clean end."""
    warn_once("timesteps", "levels(n, schedule, spacing, t_end)")
    return levels(n_steps, linear_schedule(T), spacing, t_end)[-2::-1]


def dpm_solver_timesteps(n_steps: int, schedule: Schedule, spacing: str = "uniform",
                         t_end: int | None = None) -> list[int]:
    """levels(n_steps, ...) in ascending order, clean end (-1) first."""
    warn_once("dpm_solver_timesteps", "levels(n, schedule, spacing, t_end)")
    return levels(n_steps, schedule, spacing, t_end)[::-1]


def ddim_sample(model, x_T, schedule: Schedule, steps: list[int], *, callback=None, **kwargs):
    """sample_ddim over ascending `steps` and then clean data; callback(t, x) without x0."""
    warn_once("ddim_sample", 'SAMPLERS["ddim"](model, x, schedule, levels(...))')
    two_args = (lambda t, x, x0: callback(t, x)) if callback else None
    return sample_ddim(model, x_T, schedule, sorted(steps, reverse=True) + [-1], callback=two_args, **kwargs)


def ddpm_sample(model, x_T, schedule: Schedule, **kwargs):
    """sample_ddpm over every step."""
    warn_once("ddpm_sample", 'SAMPLERS["ddpm"](model, x, schedule, levels(T, schedule))')
    return sample_ddpm(model, x_T, schedule, levels(schedule.T, schedule), **kwargs)


def dpm_solver_sample(model, x_T, schedule: Schedule, steps: list[int], **kwargs):
    """sample_dpm_solver over an ascending grid such as dpm_solver_timesteps gave."""
    warn_once("dpm_solver_sample", 'SAMPLERS["dpm-solver"](model, x, schedule, levels(...))')
    return sample_dpm_solver(model, x_T, schedule, list(steps)[::-1], **kwargs)
