"""What every sampler shares: checking a grid of levels, alpha_bar, x0 from eps, the model call, a progress bar."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from mnistdiff.diffusion import Schedule

# callback(t, x, x0_pred): after each step, x is at level t (-1: clean data) and x0_pred is the
# clean image the model predicted on the way there.
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


def distilled_steps(model) -> int:
    """The steps a distilled student samples in (its config's `distilled_steps`); 0 for any other model."""
    return getattr(getattr(model, "config", None), "distilled_steps", 0)


def distilled_method(model) -> str | None:
    """How a distilled student was made, "progressive", "consistency" or "trajectory" (its config's
    `distilled_by`; for students older than that field, "consistency" where the network has the
    consistency preconditioning, else "progressive"); None for any other model."""
    if not distilled_steps(model):
        return None
    by = getattr(model.config, "distilled_by", "")
    if by:
        return by
    return "consistency" if model.config.preconditioning == "consistency" else "progressive"


def check_levels(levels: list[int], T: int) -> list[int]:
    """`levels` as ints, or ValueError unless they fall strictly within T - 1 .. 0, then -1 (clean data) at most."""
    levels = [int(t) for t in levels]
    if len(levels) < 2 or any(b >= a for a, b in zip(levels, levels[1:])) or levels[0] > T - 1 or levels[-1] < -1:
        raise ValueError(f"levels must hold at least two levels, strictly decreasing from at most T - 1 = {T - 1} "
                         f"and ending at -1 (clean data) or above, got {levels if len(levels) < 8 else '...'}")
    return levels


def alpha_bar(schedule: Schedule, t: int) -> float:
    """alpha_bar[t] as a Python float, with alpha_bar[-1] = 1 (clean data)."""
    return 1.0 if t < 0 else float(schedule.alpha_bar[t])


def predict_x0(xt: torch.Tensor, eps: torch.Tensor, ab: float, clip_x0: bool) -> torch.Tensor:
    """x0 from Eq. 4 of Ho et al. 2020 inverted, optionally clipped to the data range [-1, 1].

    Samplers keep the model's eps beside a clipped x0, as the DDPM code and diffusers' schedulers
    do: recomputing eps from the clipped x0 would throw away the model's prediction at high noise,
    where x0 is far outside [-1, 1], and wrecks decoding of inverted latents.
    """
    x0 = (xt - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    return x0.clamp(-1, 1) if clip_x0 else x0


def call(model, x: torch.Tensor, t: int) -> torch.Tensor:
    """Evaluate the noise predictor at one timestep for the whole batch."""
    return model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)).to(x.dtype)


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def progress_bar(total: int, enabled: bool, desc: str) -> tqdm:
    """A bar over a sampler's steps, to use as a context manager: it closes at its total and stays on screen."""
    return tqdm(total=total, desc=desc, disable=not enabled, dynamic_ncols=True)

