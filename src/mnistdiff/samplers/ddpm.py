"""Ancestral sampling, Algorithm 2 of Ho et al. 2020."""

from __future__ import annotations

import math

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.common import Callback, alpha_bar, call, check_levels, noise_like, predict_x0, progress_bar

VARIANCES = ("posterior", "beta")


def ddpm_step(
    x: torch.Tensor, eps: torch.Tensor, schedule: Schedule, t: int, noise: torch.Tensor | None, *,
    variance: str = "posterior", clip_x0: bool = False,
) -> torch.Tensor:
    """x_{t-1} from x_t: the posterior mean of q(x_{t-1} | x_t, x0), Eq. 7 of Ho et al. 2020, plus noise.

    variance "posterior" uses sigma^2 = beta_tilde, "beta" uses sigma^2 = beta; t = 0 adds no noise.
    """
    return _step(x, predict_x0(x, eps, alpha_bar(schedule, t), clip_x0), schedule, t, noise, variance)


def _step(x: torch.Tensor, x0: torch.Tensor, schedule: Schedule, t: int, noise: torch.Tensor | None,
          variance: str) -> torch.Tensor:
    """ddpm_step once x0 is predicted."""
    ab, ab_prev = alpha_bar(schedule, t), alpha_bar(schedule, t - 1)
    beta = float(schedule.betas[t])
    mean = (math.sqrt(ab_prev) * beta / (1 - ab)) * x0 + (math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)) * x
    if t == 0:
        return mean
    var = beta * (1 - ab_prev) / (1 - ab) if variance == "posterior" else beta
    return mean + math.sqrt(var) * noise


@torch.no_grad()
def sample_ddpm(
    model, x: torch.Tensor, schedule: Schedule, levels: list[int], *, generator: torch.Generator | None = None,
    clip_x0: bool = False, callback: Callback | None = None, progress: bool = False, variance: str = "posterior",
) -> torch.Tensor:
    """Denoise x one level at a time from levels[0] down, Algorithm 2 of Ho et al. 2020.

    `levels` must step by one, as levels(T, schedule) does; a shorter grid is DDIM with eta = 1.
    """
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    levels = check_levels(levels, schedule.T)
    if any(a - b != 1 for a, b in zip(levels, levels[1:])):
        raise ValueError(f"DDPM steps down one level at a time: ask for all T = {schedule.T} steps, "
                         f"not {len(levels) - 1} (with fewer steps, use DDIM with eta = 1)")
    with progress_bar(len(levels) - 1, progress, "DDPM") as bar:
        for t in levels[:-1]:
            x0 = predict_x0(x, call(model, x, t), alpha_bar(schedule, t), clip_x0)
            x = _step(x, x0, schedule, t, noise_like(x, generator) if t > 0 else None, variance)
            if callback:
                callback(t - 1, x, x0)
            bar.update()
    return x


sample_ddpm.every_step = True  # generate() gives it levels(T) unless told otherwise
