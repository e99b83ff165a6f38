"""Timestep sequences and what every sampler shares."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from mnistdiff.diffusion import Schedule


def timesteps(n_steps: int, T: int, spacing: str = "uniform", t_end: int = 0) -> list[int]:
    """Ascending timesteps for a sampler that skips steps, as in the official DDIM code.

    "uniform" is 0, T/n, 2T/n, ...; "quadratic" is int(s^2) for s evenly spaced
    over [0, sqrt(0.8 T)] (Sec. D.2 of Song et al. 2021). With t_end > 0 the same
    spacing covers t_end..T - 1 instead, so sampling stops at t_end and returns the
    x0 predicted there (docs/results/t-end/README.md: on the shipped model, t_end = 200 lowers FID).
    """
    if not 1 <= n_steps <= T:
        raise ValueError(f"steps must be between 1 and T={T}, got {n_steps}")
    if not 0 <= t_end <= T - n_steps:
        raise ValueError(f"t_end must be between 0 and T - steps = {T - n_steps}, got {t_end}")
    span = T - t_end
    if spacing == "uniform":
        return [t_end + (i * span) // n_steps for i in range(n_steps)]
    if spacing == "quadratic":
        top = math.sqrt(0.8 * span)
        seq = [t_end + int((top * i / (n_steps - 1)) ** 2) if n_steps > 1 else t_end for i in range(n_steps)]
        if len(set(seq)) != n_steps:
            raise ValueError(f"quadratic spacing repeats timesteps at {n_steps} steps: use fewer or 'uniform'")
        return seq
    raise ValueError(f"unknown spacing {spacing!r}: use 'uniform' or 'quadratic'")


def check_steps(steps: list[int], T: int) -> list[int]:
    steps = [int(s) for s in steps]
    if not steps or any(b <= a for a, b in zip(steps, steps[1:])) or steps[0] < 0 or steps[-1] >= T:
        raise ValueError(f"steps must be strictly increasing within 0..{T - 1}")
    return steps


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


def progress_bar(items, enabled: bool, desc: str):
    return tqdm(items, desc=desc, leave=False, dynamic_ncols=True) if enabled else items
