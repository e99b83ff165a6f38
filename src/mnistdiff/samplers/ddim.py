"""DDIM sampling and inversion, one update run in both directions."""

from __future__ import annotations

import math

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.common import (Callback, alpha_bar, call, check_levels, distilled_steps, noise_like, predict_x0,
                                       progress_bar)


def ddim_update(
    x: torch.Tensor, eps: torch.Tensor, ab_from: float, ab_to: float, *,
    eta: float = 0.0, noise: torch.Tensor | None = None, clip_x0: bool = False,
) -> torch.Tensor:
    """Move x from level alpha_bar = ab_from to ab_to, Eq. 12 of Song et al. 2021.

    With ab_to < ab_from this denoises (sampling); with ab_to > ab_from and
    eta = 0 it adds noise along the same deterministic path (inversion).
    """
    return _to_level(predict_x0(x, eps, ab_from, clip_x0), eps, ab_from, ab_to, eta, noise)


def _to_level(x0: torch.Tensor, eps: torch.Tensor, ab_from: float, ab_to: float, eta: float,
              noise: torch.Tensor | None) -> torch.Tensor:
    """ddim_update once x0 is predicted."""
    # sigma_t of Eq. 16; eta = 1 gives the DDPM posterior variance.
    sigma = eta * math.sqrt((1 - ab_to) / (1 - ab_from) * (1 - ab_from / ab_to)) if eta > 0 else 0.0
    # The direction pointing to x_t, then the random part.
    x = math.sqrt(ab_to) * x0 + math.sqrt(max(1 - ab_to - sigma**2, 0.0)) * eps
    if sigma > 0:
        x = x + sigma * noise
    return x


@torch.no_grad()
def check_eta(eta: float) -> float:
    """eta as DDIM takes it, from every way it comes in (CLI, explorer, Python): a finite number in
    [0, 1], 0 deterministic and 1 the DDPM posterior's noise (above 1 the update has no real solution)."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not (math.isfinite(eta) and 0 <= eta <= 1):
        raise ValueError(f"eta must be a number in [0, 1] (0: deterministic, 1: DDPM's noise), got {eta!r}")
    return float(eta)


def sample_ddim(
    model, x: torch.Tensor, schedule: Schedule, levels: list[int], *, generator: torch.Generator | None = None,
    clip_x0: bool = False, callback: Callback | None = None, progress: bool = False, eta: float = 0.0,
) -> torch.Tensor:
    """Denoise x from levels[0] down to levels[-1], Eq. 12 of Song et al. 2021; eta = 0 is deterministic."""
    check_eta(eta)
    return _walk(model, x, schedule, check_levels(levels, schedule.T), "DDIM", eta=eta, generator=generator,
                 clip_x0=clip_x0, callback=callback, progress=progress)


@torch.no_grad()
def ddim_invert(
    model, x0: torch.Tensor, schedule: Schedule, levels: list[int], *, callback: Callback | None = None,
    progress: bool = False, iterations: int = 0,
) -> torch.Tensor:
    """Encode x0 at levels[-1] (clean data) to x_T at levels[0] by running the eta = 0 update forwards
    (Sec. 4.3 of Song et al. 2021): the same levels as sampling, walked in reverse.

    Each step evaluates the model where x is now; the first, from clean data, at the lowest level
    the model knows. That assumes eps(x_s) = eps(x_t) across the step, loose with few steps. With
    `iterations` K > 0 each step is then refined by fixed-point iteration on x_t = F(x_s, eps(x_t, t)),
    F the update from s up to t (Pan et al. 2023, "AIDI"; Garibi et al. 2024, "ReNoise"): its fixed
    point is the x_t that the DDIM step back down maps to x_s exactly. (1 + K) model calls per step.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    refuse_student(model)
    levels = check_levels(levels, schedule.T)
    return _walk(model, x0, schedule, levels[::-1], "DDIM inversion", callback=callback, progress=progress,
                 iterations=iterations)


def refuse_student(model) -> None:
    """One-line ValueError for a distilled student (its config's distilled_steps): its few steps follow
    no ODE that inversion could walk back up, so inverting, and merging through it, needs the teacher."""
    steps = distilled_steps(model)
    if steps:
        raise ValueError(f"DDIM inversion needs the teacher: this model is a student distilled for {steps} "
                         f"step(s), which cannot be run backwards (pass the teacher's --checkpoint)")


def _walk(model, x: torch.Tensor, schedule: Schedule, path: list[int], desc: str, *, eta: float = 0.0,
          generator=None, clip_x0: bool = False, callback: Callback | None = None, progress: bool = False,
          iterations: int = 0):
    """The DDIM update from each level of `path` to the next, in whichever direction it runs; with
    `iterations`, each step's fixed-point refinement (ddim_invert)."""
    lowest = min(t for t in path if t >= 0)
    with progress_bar(len(path) - 1, progress, desc) as bar:
        for t_from, t_to in zip(path, path[1:]):
            eps = call(model, x, max(t_from, lowest))
            noisy = eta > 0 and t_to >= 0  # the step to clean data adds no noise
            ab_from = alpha_bar(schedule, t_from)
            x0 = predict_x0(x, eps, ab_from, clip_x0)
            x_from, ab_to = x, alpha_bar(schedule, t_to)
            x = _to_level(x0, eps, ab_from, ab_to, eta if noisy else 0.0, noise_like(x, generator) if noisy else None)
            for _ in range(iterations):  # the same step from x_from, with eps where it lands
                eps = call(model, x, t_to)
                x0 = predict_x0(x_from, eps, ab_from, clip_x0)
                x = _to_level(x0, eps, ab_from, ab_to, 0.0, None)
            if callback:
                callback(t_to, x, x0)
            bar.update()
    return x


sample_ddim.spacing = "uniform"  # the official DDIM code's grid, which the report's DDIM rows use
