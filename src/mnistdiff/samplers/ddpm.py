"""Ancestral sampling, Algorithm 2 of Ho et al. 2020."""

from __future__ import annotations

import math

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.steps import alpha_bar, call, predict_x0, progress_bar

VARIANCES = ("posterior", "beta")


def ddpm_step(
    x: torch.Tensor, eps: torch.Tensor, schedule: Schedule, t: int, noise: torch.Tensor | None, *,
    variance: str = "posterior", clip_x0: bool = False,
) -> torch.Tensor:
    """x_{t-1} from x_t: the posterior mean of q(x_{t-1} | x_t, x0), Eq. 7 of Ho et al. 2020, plus noise.

    variance "posterior" uses sigma^2 = beta_tilde, "beta" uses sigma^2 = beta; t = 0 adds no noise.
    """
    ab, ab_prev = alpha_bar(schedule, t), alpha_bar(schedule, t - 1)
    beta = float(schedule.betas[t])
    x0 = predict_x0(x, eps, ab, clip_x0)
    mean = (math.sqrt(ab_prev) * beta / (1 - ab)) * x0 + (math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)) * x
    if t == 0:
        return mean
    var = beta * (1 - ab_prev) / (1 - ab) if variance == "posterior" else beta
    return mean + math.sqrt(var) * noise


@torch.no_grad()
def ddpm_sample(
    model,
    x_T: torch.Tensor,
    schedule: Schedule,
    *,
    variance: str = "posterior",
    clip_x0: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Run all T steps from x_T (at t = T-1) to x0, Algorithm 2 of Ho et al. 2020."""
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    x = x_T
    for t in progress_bar(range(schedule.T - 1, -1, -1), progress, "DDPM"):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) if t > 0 else None
        x = ddpm_step(x, call(model, x, t), schedule, t, noise, variance=variance, clip_x0=clip_x0)
    return x
