"""DPM-Solver++(2M): a second-order multistep solver of the diffusion ODE in x0-prediction form."""

from __future__ import annotations

import math

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.steps import call, check_steps, predict_x0, progress_bar


def dpm_solver_timesteps(
    n_steps: int, schedule: Schedule, spacing: str = "uniform", t_end: int | None = None,
) -> list[int]:
    """The ascending grid of n_steps + 1 levels that n_steps solver steps visit, from T - 1 down.

    The three grids of Lu et al. 2022: "uniform" spaces the levels evenly in t, "logsnr" evenly
    in lambda = log(alpha / sigma), "quadratic" evenly in sqrt(t) (denser near t = 0); each level
    is rounded to the nearest trained timestep. Without t_end the grid runs from T - 1 to 0 and
    sampling ends at t = 0. With t_end the model is evaluated at n_steps levels from T - 1 down to
    t_end, and the last step goes from t_end to clean data, written -1 (sigma = 0): the grid is
    [-1, t_end, ..., T - 1] and the samples are the x0 predicted at t_end.

    On Gaussian data "logsnr" is far more accurate at 20 steps (a time-uniform grid's last step
    spans 2.9 in lambda; tests/test_dpm_solver.py). On the shipped MNIST model "uniform" gives the
    lowest FID at 5 and 10 steps, and ending at t_end = 200 lowers FID further, for DDIM too
    (docs/results/nfe-curve.md, docs/results/t-end/README.md).
    """
    T = schedule.T
    if t_end is not None:
        if not 0 <= t_end <= T - 1 - (n_steps - 1):
            raise ValueError(f"t_end must leave room for {n_steps} levels in 0..{T - 1}, got {t_end}")
        if n_steps == 1:
            return [-1, T - 1]
        return [-1] + _levels(n_steps - 1, schedule, spacing, t_end)
    if not 1 <= n_steps <= T - 1:
        raise ValueError(f"steps must be between 1 and T - 1 = {T - 1}, got {n_steps}")
    return _levels(n_steps, schedule, spacing, 0)


def _levels(n: int, schedule: Schedule, spacing: str, low: int) -> list[int]:
    """n + 1 ascending whole levels from `low` to T - 1, spaced by `spacing`."""
    T = schedule.T
    span = T - 1 - low
    if spacing == "uniform":
        return _distinct([low + round(i * span / n) for i in range(n + 1)], low, T)
    if spacing == "logsnr":
        lam = _lambdas(schedule)  # decreasing in t
        targets = torch.linspace(float(lam[low]), float(lam[-1]), n + 1, dtype=torch.float64)
        return _distinct([int((lam - v).abs().argmin()) for v in targets], low, T)
    if spacing == "quadratic":
        return _distinct([low + round((i / n) ** 2 * span) for i in range(n + 1)], low, T)
    raise ValueError(f"unknown spacing {spacing!r}: use 'uniform', 'logsnr' or 'quadratic'")


def _distinct(grid: list[int], low: int, T: int) -> list[int]:
    """Near the ends a grid can move slower than one level per step: push levels apart, keeping low and T - 1."""
    grid[0] = low
    for i in range(1, len(grid)):
        grid[i] = max(grid[i], grid[i - 1] + 1)
    grid[-1] = T - 1
    for i in range(len(grid) - 2, -1, -1):
        grid[i] = min(grid[i], grid[i + 1] - 1)
    if grid[0] < low:
        raise ValueError(f"{len(grid) - 1} steps do not fit in levels {low}..{T - 1}")
    return grid


def _lambdas(schedule: Schedule) -> torch.Tensor:
    """lambda_t = log(alpha_t / sigma_t), the half log signal-to-noise ratio, for every t."""
    ab = schedule.alpha_bar.double()
    return 0.5 * (ab.log() - (1 - ab).log())


@torch.no_grad()
def dpm_solver_sample(
    model,
    x_T: torch.Tensor,
    schedule: Schedule,
    steps: list[int],
    *,
    clip_x0: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Denoise x_T at level steps[-1] down to level steps[0], Alg. 2 of Lu et al. 2022 (DPM-Solver++(2M)).

    `steps` is an ascending grid of levels (dpm_solver_timesteps gives one); the model is
    evaluated once at every level but the last one reached, so len(steps) - 1 evaluations.
    steps[0] = -1 means clean data (sigma = 0): the last step then returns the x0 predicted at
    steps[1]. Ending at t = 0 instead leaves noise of std sigma_0 = sqrt(beta_0) (0.01 for the
    linear schedule). The first step is first order (no history yet); so is the final one for
    grids of at most 10 steps, which Lu et al. found steadier with few steps, and for any grid
    ending at clean data, where the second-order correction is undefined (h is infinite).
    """
    clean_end = len(steps) > 0 and steps[0] == -1
    # Descending: levels[0] is where x_T sits; a clean end stays last.
    levels = check_steps(steps[1:] if clean_end else steps, schedule.T)[::-1] + ([-1] if clean_end else [])
    if len(levels) < 2:
        raise ValueError("steps must hold at least two levels: where sampling starts and where it ends")
    ab = schedule.alpha_bar.double()
    alpha, sigma, lam = ab.sqrt(), (1 - ab).sqrt(), _lambdas(schedule)
    n = len(levels) - 1
    x, x0_prev, h_prev = x_T, None, None
    for i in progress_bar(range(n), progress, "DPM-Solver++"):
        s, t = levels[i], levels[i + 1]
        x0 = predict_x0(x, call(model, x, s), float(ab[s]), clip_x0)
        if t < 0:  # to clean data: alpha = 1, sigma = 0, and the first-order step lands on x0
            return x0
        h = float(lam[t] - lam[s])
        # Second order from the previous x0, except at the first step and a few-step grid's last.
        if x0_prev is None or (i == n - 1 and n <= 10):
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        # The exact solution of the linear part plus the exponentially weighted x0 estimate.
        x = float(sigma[t] / sigma[s]) * x - float(alpha[t]) * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x
