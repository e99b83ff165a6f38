"""DPM-Solver++(2M): a second-order multistep solver of the diffusion ODE in x0-prediction form."""

from __future__ import annotations

import math

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.common import Callback, call, check_levels, predict_x0, progress_bar
from mnistdiff.samplers.levels import lambdas


@torch.no_grad()
def sample_dpm_solver(
    model, x: torch.Tensor, schedule: Schedule, levels: list[int], *, generator: torch.Generator | None = None,
    clip_x0: bool = False, callback: Callback | None = None, progress: bool = False,
) -> torch.Tensor:
    """Solve the diffusion ODE from levels[0] down to levels[-1], Alg. 2 of Lu et al. 2022 (DPM-Solver++(2M)).

    The model is evaluated once at every level but the last, so len(levels) - 1 times. The last
    level -1 is clean data (sigma = 0): the last step returns the x0 predicted at the level before.
    The first step is first order (no history yet); so is the final one for grids of at most 10
    steps, which Lu et al. found steadier with few steps, and for a grid ending at clean data, where
    the second-order correction is undefined (h is infinite). The solver draws no noise: `generator`
    is there for the common signature.
    """
    levels = check_levels(levels, schedule.T)
    ab = schedule.alpha_bar.double()
    alpha, sigma, lam = ab.sqrt(), (1 - ab).sqrt(), lambdas(schedule)
    n = len(levels) - 1
    x0_prev, h_prev = None, None
    with progress_bar(n, progress, "DPM-Solver++") as bar:
        for i, (s, t) in enumerate(zip(levels, levels[1:])):
            x0 = predict_x0(x, call(model, x, s), float(ab[s]), clip_x0)
            if t < 0:  # to clean data: alpha = 1, sigma = 0, and the first-order step lands on x0
                x = x0
            else:
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
            if callback:
                callback(t, x, x0)
            bar.update()
    return x


sample_dpm_solver.spacing = "trailing"  # from T - 1: best of the grids at every budget measured (docs/sampling.md)
