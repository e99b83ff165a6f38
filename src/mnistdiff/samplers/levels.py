"""The levels a sampler visits: descending timesteps ending with -1, clean data.

One small function per spacing, as k-diffusion's get_sigmas_karras / get_sigmas_exponential: each
gives the n timesteps of its grid in low..T - 1, ascending; `levels` checks the request, looks the
spacing up in SPACINGS, and walks the grid down to -1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mnistdiff.diffusion import Schedule


def uniform_grid(n: int, schedule: Schedule, low: int = 0) -> list[int]:
    """The official DDIM code's grid: low + i (T - low) / n for i in 0..n-1, floored."""
    T = schedule.T
    return [low + i * (T - low) // n for i in range(n)]


def quadratic_grid(n: int, schedule: Schedule, low: int = 0) -> list[int]:
    """low to T - 1 evenly in sqrt(t), rounded: denser near clean data."""
    T = schedule.T
    if n == 1:
        return [T - 1]
    return _distinct([low + round((i / (n - 1)) ** 2 * (T - 1 - low)) for i in range(n)], low, T)


def logsnr_grid(n: int, schedule: Schedule, low: int = 0) -> list[int]:
    """low to T - 1 evenly in lambda = log(alpha / sigma), as Lu et al. 2022 space DPM-Solver's
    steps: each target lambda goes to the nearest timestep."""
    T = schedule.T
    if n == 1:
        return [T - 1]
    lam = lambdas(schedule)  # (T,), decreasing in t
    targets = torch.linspace(float(lam[low]), float(lam[-1]), n, dtype=torch.float64)
    return _distinct([int((lam - v).abs().argmin()) for v in targets], low, T)


def trailing_grid(n: int, schedule: Schedule, low: int = 0) -> list[int]:
    """The uniform grid shifted to start at T - 1: T - 1, T - 1 - T/n, ..., rounded half to even as
    numpy rounds in diffusers' timestep_spacing "trailing" (Lin et al. 2024), so that few steps start
    from the level of pure noise. It ends at T/n - 1 and takes no t_end."""
    T = schedule.T
    if low:
        raise ValueError("the trailing spacing ends at T/n - 1 and takes no t_end: stop early on another spacing "
                         "(uniform, say)")
    return [round(T - i * (T / n)) - 1 for i in range(n)][::-1]


# The grid every distilled student steps on, in training and in sampling: T - 1 is always its first level.
STUDENT_SPACING = "trailing"

SPACINGS: dict[str, Callable[[int, Schedule, int], list[int]]] = {
    "uniform": uniform_grid,
    "trailing": trailing_grid,
    "quadratic": quadratic_grid,
    "logsnr": logsnr_grid,
}


def levels(n: int, schedule: Schedule, spacing: str = "uniform", t_end: int | None = None) -> list[int]:
    """The n levels where a sampler evaluates the model, descending, then -1 (clean data): n + 1 in all.

    `spacing` names a grid of SPACINGS. With t_end the grid covers t_end..T - 1 instead of 0..T - 1,
    so the last model evaluation is at t_end and sampling returns the x0 predicted there.
    levels(T, schedule) is every step, T - 1 down to 0.
    """
    T, low = schedule.T, t_end or 0
    if not 1 <= n <= T:
        raise ValueError(f"steps must be at least 1 and at most T={T}, got {n}")
    if not 0 <= low <= T - n:
        raise ValueError(f"t_end must be between 0 and T - steps = {T - n}, got {t_end}")
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}: use one of {', '.join(SPACINGS)}")
    return SPACINGS[spacing](n, schedule, low)[::-1] + [-1]


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
