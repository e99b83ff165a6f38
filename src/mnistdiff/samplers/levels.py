"""The levels a sampler visits: descending timesteps ending with -1, clean data."""

from __future__ import annotations

import torch

from mnistdiff.diffusion import Schedule

SPACINGS = ("uniform", "trailing", "quadratic", "logsnr")


def levels(n: int, schedule: Schedule, spacing: str = "uniform", t_end: int | None = None) -> list[int]:
    """The n levels where a sampler evaluates the model, descending, then -1 (clean data): n + 1 in all.

    "uniform" is the official DDIM code's grid 0, T/n, 2T/n, ... (floored); "trailing" is the same
    grid shifted to start at T - 1 (T - 1, T - 1 - T/n, ..., rounded, as diffusers' timestep_spacing
    "trailing" and Lin et al. 2024), so that few steps start from the level of pure noise; "quadratic" runs from
    T - 1 down to 0 evenly in sqrt(t), denser near clean data, and "logsnr" evenly in
    lambda = log(alpha / sigma), as Lu et al. 2022 space DPM-Solver's steps. Each is rounded to
    whole timesteps. With t_end the same spacing covers t_end..T - 1 instead, so the last model
    evaluation is at t_end and sampling returns the x0 predicted there; "trailing" takes no t_end, its
    last level being T/n - 1. levels(T, schedule) is
    every step, T - 1 down to 0.
    """
    T, low = schedule.T, t_end or 0
    if not 1 <= n <= T:
        raise ValueError(f"steps must be at least 1 and at most T={T}, got {n}")
    if not 0 <= low <= T - n:
        raise ValueError(f"t_end must be between 0 and T - steps = {T - n}, got {t_end}")
    if spacing == "uniform":
        grid = [low + i * (T - low) // n for i in range(n)]
    elif spacing == "trailing":
        grid = _trailing(n, T, low)
    elif spacing in ("quadratic", "logsnr") and n == 1:
        grid = [T - 1]
    elif spacing == "quadratic":
        grid = _distinct([low + round((i / (n - 1)) ** 2 * (T - 1 - low)) for i in range(n)], low, T)
    elif spacing == "logsnr":
        lam = lambdas(schedule)  # decreasing in t
        targets = torch.linspace(float(lam[low]), float(lam[-1]), n, dtype=torch.float64)
        grid = _distinct([int((lam - v).abs().argmin()) for v in targets], low, T)
    else:
        raise ValueError(f"unknown spacing {spacing!r}: use one of {', '.join(SPACINGS)}")
    return grid[::-1] + [-1]


def _trailing(n: int, T: int, low: int) -> list[int]:
    """T - 1 down in steps of T/n, ascending; round() rounds half to even, as numpy does in diffusers."""
    if low:
        raise ValueError("the trailing spacing ends at T/n - 1 and takes no t_end")
    return [round(T - i * (T / n)) - 1 for i in range(n)][::-1]


def _distinct(grid: list[int], low: int, T: int) -> list[int]:
    """Near the ends a grid can move slower than one level per step: push levels apart, keeping low and T - 1."""
    grid[0] = low
    for i in range(1, len(grid)):
        grid[i] = max(grid[i], grid[i - 1] + 1)
    grid[-1] = T - 1
    for i in range(len(grid) - 2, -1, -1):
        grid[i] = min(grid[i], grid[i + 1] - 1)
    return grid


def lambdas(schedule: Schedule) -> torch.Tensor:
    """lambda_t = log(alpha_t / sigma_t), the half log signal-to-noise ratio, for every t."""
    ab = schedule.alpha_bar.double()
    return 0.5 * (ab.log() - (1 - ab).log())
