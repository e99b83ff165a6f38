"""DPM-Solver++(2M) SDE: the second-order multistep solver of the diffusion SDE in x0-prediction form."""

from __future__ import annotations

import math

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.common import Callback, call, check_levels, noise_like, predict_x0, progress_bar
from mnistdiff.samplers.levels import lambdas


@torch.no_grad()
def sample_dpm_solver_sde(
    model, x: torch.Tensor, schedule: Schedule, levels: list[int], *, generator: torch.Generator | None = None,
    clip_x0: bool = False, callback: Callback | None = None, progress: bool = False,
) -> torch.Tensor:
    """Solve the diffusion SDE from levels[0] down, SDE-DPM-Solver++(2M) of Lu et al. 2022 (Appendix; as
    k-diffusion's sample_dpmpp_2m_sde with eta = 1 and its midpoint rule, and diffusers'
    DPMSolverMultistepScheduler with algorithm_type "sde-dpmsolver++").

    One model evaluation at every level but the last, and fresh noise from `generator` at every
    step but the last. The first step is first order (no history yet); the step to clean data
    (sigma = 0) returns the x0 predicted at the level before, as the first-order step does there.
    """
    levels = check_levels(levels, schedule.T)
    ab = schedule.alpha_bar.double()
    alpha, sigma, lam = ab.sqrt(), (1 - ab).sqrt(), lambdas(schedule)
    x0_prev, h_prev = None, None
    with progress_bar(len(levels) - 1, progress, "DPM-Solver++ SDE") as bar:
        for s, t in zip(levels, levels[1:]):
            x0 = predict_x0(x, call(model, x, s), float(ab[s]), clip_x0)
            if t < 0:  # to clean data: alpha = 1, sigma = 0, h infinite
                x = x0
            else:
                h = float(lam[t] - lam[s])
                # The first-order x0 term, plus half the divided difference of x0 (the midpoint rule).
                d = x0 if x0_prev is None else x0 + 0.5 * (h / h_prev) * (x0 - x0_prev)
                # The exact linear part, the x0 estimate weighted over the step, then noise.
                x = (float(sigma[t] / sigma[s]) * math.exp(-h)) * x - float(alpha[t]) * math.expm1(-2 * h) * d \
                    + float(sigma[t]) * math.sqrt(-math.expm1(-2 * h)) * noise_like(x, generator)
                x0_prev, h_prev = x0, h
            if callback:
                callback(t, x, x0)
            bar.update()
    return x


sample_dpm_solver_sde.spacing = "trailing"  # from T - 1: ahead of "logsnr" at every budget measured (docs/sampling.md)
