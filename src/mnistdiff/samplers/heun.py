"""Heun's method on the diffusion ODE and EDM's stochastic sampler, Algorithms 1 and 2 of Karras et al. 2022.

Both run in EDM's variables on the VP schedule: sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) and
x_sigma = x_t / sqrt(alpha_bar_t), where the probability-flow ODE reads dx_sigma / dsigma = eps(x_t, t)
and clean data (t = -1) is sigma = 0. The model takes whole timesteps, so it is evaluated at levels
only: those of the grid, and for EDM's churn the level its raised sigma rounds up to.
"""

from __future__ import annotations

import math

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.common import Callback, alpha_bar, call, check_levels, noise_like, progress_bar

# EDM's settings of Algorithm 2 for its VP model on CIFAR-10 (Table 5 of Karras et al. 2022).
S_CHURN, S_TMIN, S_TMAX, S_NOISE = 30.0, 0.01, 1.0, 1.007


def sigma(schedule: Schedule, t: int) -> float:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), 0 for clean data (t = -1)."""
    ab = alpha_bar(schedule, t)
    return math.sqrt((1 - ab) / ab)


def _eps(model, x: torch.Tensor, schedule: Schedule, t: int) -> torch.Tensor:
    """The model's eps at x_sigma = x on level t (it sees x_t = sqrt(alpha_bar_t) x_sigma)."""
    return call(model, x * math.sqrt(alpha_bar(schedule, t)), t)


def _heun_step(model, x: torch.Tensor, schedule: Schedule, t_from: int, t_to: int,
               clip_x0: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """x_sigma from level t_from to t_to, and the x0 predicted at t_from: an Euler step, corrected by
    the trapezoidal rule unless t_to is clean data (where the slope is undefined, so 2 model
    evaluations per step but 1 for the last).

    With clip_x0, x first moves onto the clipped x0 keeping the model's eps, as DDIM's update does
    (the Euler step is DDIM's update: x0 + sigma_to eps).
    """
    s_from, s_to = sigma(schedule, t_from), sigma(schedule, t_to)
    eps = _eps(model, x, schedule, t_from)
    x0 = x - s_from * eps
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        x = x0 + s_from * eps
    x_next = x + (s_to - s_from) * eps  # Euler
    if t_to >= 0:  # the trapezoidal rule with the slope at the Euler point
        x_next = x + (s_to - s_from) * 0.5 * (eps + _eps(model, x_next, schedule, t_to))
    return x_next, x0


def churned_level(schedule: Schedule, t: int, gamma: float) -> int:
    """The level of sigma_hat = (1 + gamma) sigma_t, rounded up: the lowest t_hat >= t whose sigma is
    at least sigma_hat, and T - 1 where no level reaches it. gamma = 0 gives t."""
    target = (1 + gamma) * sigma(schedule, t)
    ab = schedule.alpha_bar.double()
    sigmas = ((1 - ab) / ab).sqrt()
    above = torch.nonzero(sigmas[t:] >= target * (1 - 1e-12)).flatten()
    return t + int(above[0]) if len(above) else schedule.T - 1


def _solve(model, x: torch.Tensor, schedule: Schedule, levels: list[int], desc: str, *, churn: tuple | None,
           generator, clip_x0: bool, callback: Callback | None, progress: bool) -> torch.Tensor:
    """Algorithm 2 of Karras et al. 2022 on `levels` (x: x_t at levels[0]); churn None is Algorithm 1."""
    levels = check_levels(levels, schedule.T)
    n = len(levels) - 1
    x = x / math.sqrt(alpha_bar(schedule, levels[0]))  # x_sigma
    with progress_bar(n, progress, desc) as bar:
        for t_from, t_to in zip(levels, levels[1:]):
            if churn is not None:
                # Raise the noise from sigma_t to sigma_hat, the level it rounds up to, by fresh noise.
                s_churn, s_tmin, s_tmax, s_noise = churn
                s = sigma(schedule, t_from)
                gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= s <= s_tmax else 0.0
                t_hat = churned_level(schedule, t_from, gamma)
                if t_hat > t_from:
                    s_hat = sigma(schedule, t_hat)
                    x = x + math.sqrt(s_hat**2 - s**2) * s_noise * noise_like(x, generator)
                    t_from = t_hat
            x, x0 = _heun_step(model, x, schedule, t_from, t_to, clip_x0)
            if callback:
                callback(t_to, x * math.sqrt(alpha_bar(schedule, t_to)), x0)
            bar.update()
    return x * math.sqrt(alpha_bar(schedule, levels[-1]))


@torch.no_grad()
def sample_heun(
    model, x: torch.Tensor, schedule: Schedule, levels: list[int], *, generator: torch.Generator | None = None,
    clip_x0: bool = False, callback: Callback | None = None, progress: bool = False,
) -> torch.Tensor:
    """Solve the diffusion ODE from levels[0] down by Heun's method, Alg. 1 of Karras et al. 2022.

    n steps make 2n - 1 model evaluations: two per step, one for the last step to clean data. It
    draws no noise: `generator` is there for the common signature.
    """
    return _solve(model, x, schedule, levels, "Heun", churn=None, generator=generator, clip_x0=clip_x0,
                  callback=callback, progress=progress)


@torch.no_grad()
def sample_edm(
    model, x: torch.Tensor, schedule: Schedule, levels: list[int], *, generator: torch.Generator | None = None,
    clip_x0: bool = False, callback: Callback | None = None, progress: bool = False, s_churn: float = S_CHURN,
    s_tmin: float = S_TMIN, s_tmax: float = S_TMAX, s_noise: float = S_NOISE,
) -> torch.Tensor:
    """EDM's stochastic sampler, Alg. 2 of Karras et al. 2022: Heun steps, each from a level raised by churn.

    Where s_tmin <= sigma_t <= s_tmax, a step first adds noise (times s_noise) to raise sigma_t to
    sigma_hat = (1 + gamma) sigma_t, gamma = min(s_churn / n, sqrt(2) - 1) over n steps. Since the
    model takes whole timesteps, sigma_hat rounds up to the next level's sigma (churned_level) and
    the noise added reaches that sigma exactly. s_churn = 0 is sample_heun. The defaults are EDM's
    for its VP model; 2n - 1 model evaluations, as Heun.
    """
    if min(s_churn, s_tmin, s_tmax, s_noise) < 0:
        raise ValueError("s_churn, s_tmin, s_tmax and s_noise must be >= 0")
    return _solve(model, x, schedule, levels, "EDM", churn=(s_churn, s_tmin, s_tmax, s_noise), generator=generator,
                  clip_x0=clip_x0, callback=callback, progress=progress)


def _evaluations(n: int) -> int:
    return 2 * n - 1


sample_heun.evaluations = sample_edm.evaluations = _evaluations  # generate() reads these (samplers/__init__.py)
# From T - 1: "logsnr" (evenly in log sigma, near EDM's own rho = 7 grid) starts where sigma is ~157 and
# loses to it at every budget measured (docs/sampling.md).
sample_heun.spacing = sample_edm.spacing = "trailing"
