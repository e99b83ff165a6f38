"""Samplers: plain functions that call whatever `model(xt, t) -> eps` they are given."""

from mnistdiff.samplers.ddim import ddim_invert, ddim_sample, ddim_update
from mnistdiff.samplers.dpm_solver import dpm_solver_sample, dpm_solver_timesteps
from mnistdiff.samplers.ddpm import ddpm_sample, ddpm_step
from mnistdiff.samplers.steps import timesteps

__all__ = ["ddim_invert", "ddim_sample", "ddim_update", "ddpm_sample", "ddpm_step", "dpm_solver_sample",
           "dpm_solver_timesteps", "timesteps"]
