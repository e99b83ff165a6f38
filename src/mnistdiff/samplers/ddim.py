"""DDIM sampling and inversion, one update run in both directions."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.steps import alpha_bar, call, check_steps, predict_x0, progress_bar


def ddim_update(
    x: torch.Tensor, eps: torch.Tensor, ab_from: float, ab_to: float, *,
    eta: float = 0.0, noise: torch.Tensor | None = None, clip_x0: bool = False,
) -> torch.Tensor:
    """Move x from level alpha_bar = ab_from to ab_to, Eq. 12 of Song et al. 2021.

    With ab_to < ab_from this denoises (sampling); with ab_to > ab_from and
    eta = 0 it adds noise along the same deterministic path (inversion).
    """
    x0 = predict_x0(x, eps, ab_from, clip_x0)
    # sigma_t of Eq. 16; eta = 1 gives the DDPM posterior variance.
    sigma = eta * math.sqrt((1 - ab_to) / (1 - ab_from) * (1 - ab_from / ab_to)) if eta > 0 else 0.0
    # The direction pointing to x_t, then the random part.
    x = math.sqrt(ab_to) * x0 + math.sqrt(max(1 - ab_to - sigma**2, 0.0)) * eps
    if sigma > 0:
        x = x + sigma * noise
    return x


@torch.no_grad()
def ddim_sample(
    model,
    x_T: torch.Tensor,
    schedule: Schedule,
    steps: list[int],
    *,
    eta: float = 0.0,
    clip_x0: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Denoise x_T at steps[-1] down to x0, visiting only `steps` (ascending), Eq. 12 of Song et al. 2021.

    callback(t, x), if given, sees x after each step; t = -1 is the clean end.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    steps = check_steps(steps, schedule.T)
    x = x_T
    for i in progress_bar(range(len(steps) - 1, -1, -1), progress, "DDIM"):
        t, t_prev = steps[i], steps[i - 1] if i > 0 else -1
        noise = None
        if eta > 0 and t_prev >= 0:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        ab_prev = alpha_bar(schedule, t_prev)
        x = ddim_update(x, call(model, x, t), alpha_bar(schedule, t), ab_prev,
                        eta=eta if t_prev >= 0 else 0.0, noise=noise, clip_x0=clip_x0)
        if callback:
            callback(t_prev, x)
    return x


@torch.no_grad()
def ddim_invert(
    model, x0: torch.Tensor, schedule: Schedule, steps: list[int], *, progress: bool = False,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Encode x0 to x_T at steps[-1] by running the eta = 0 update forwards (Sec. 4.3 of Song et al. 2021).

    Each step evaluates the model where x is now; the first, from clean data,
    uses steps[0], the nearest level the model knows.
    """
    steps = check_steps(steps, schedule.T)
    x = x0
    levels = [-1] + steps
    for i in progress_bar(range(len(steps)), progress, "DDIM inversion"):
        t_from, t_to = levels[i], levels[i + 1]
        eps = call(model, x, max(t_from, steps[0]))
        x = ddim_update(x, eps, alpha_bar(schedule, t_from), alpha_bar(schedule, t_to))
        if callback:
            callback(t_to, x)
    return x
