"""The DDPM forward process: noise schedules, q_sample and the training loss.

Conventions used across the package: t runs over 0..T-1 and t = 0 means one
step of noise, so alpha_bar[0] = 1 - betas[0]. Samplers treat the level
before the first step as alpha_bar_prev = 1 (clean data). Schedules are kept
in float64 and cast where they are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Schedule:
    """A discrete noise schedule: float64 `betas` and `alpha_bar`, each (T,)."""

    betas: torch.Tensor
    alpha_bar: torch.Tensor

    @property
    def T(self) -> int:
        return self.betas.shape[0]


@dataclass(frozen=True)
class ScheduleConfig:
    """What a checkpoint records to rebuild its schedule."""

    kind: str = "linear"
    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Linearly spaced betas, Sec. 4 of Ho et al. 2020."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return Schedule(betas, torch.cumprod(1.0 - betas, dim=0))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Eq. 17 of Nichol & Dhariwal 2021, betas clipped at `max_beta`."""
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return Schedule(betas, torch.cumprod(1.0 - betas, dim=0))


def make_schedule(config: ScheduleConfig) -> Schedule:
    if config.kind == "linear":
        return linear_schedule(config.T, config.beta_start, config.beta_end)
    if config.kind == "cosine":
        return cosine_schedule(config.T)
    raise ValueError(f"unknown schedule {config.kind!r}: use 'linear' or 'cosine'")


def _per_sample(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Gather values[t] and shape them (B, 1, 1, 1) in the dtype of `like`."""
    out = values.to(like.device)[t].to(like.dtype)
    return out.view(-1, *([1] * (like.dim() - 1)))


def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) eps, Eq. 4 of Ho et al. 2020."""
    ab = _per_sample(schedule.alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def eps_loss(model, schedule: Schedule, x0: torch.Tensor, generator: torch.Generator | None = None,
             min_snr_gamma: float = 0.0, shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """The simple eps-prediction MSE, Eq. 14 of Ho et al. 2020, with t uniform over 0..T-1.

    With `min_snr_gamma` > 0 each image's error is weighted by min(SNR_t, gamma) / SNR_t
    (Min-SNR-gamma, Hang et al. 2023, eps form): the low-noise steps, whose error is easy
    to lower and says little about shapes, count less.

    `shard` (rank, world_size): x0 is slice `rank` of a global batch `world_size` times larger;
    t and eps are drawn for the whole global batch and sliced alike, so the processes of a
    data-parallel run together see the noise one process would.
    """
    rank, world_size = shard
    b = x0.shape[0]
    # Drawn where the generator lives, so a CPU generator gives the same noise for any model device.
    where = generator.device if generator is not None else x0.device
    t = torch.randint(0, schedule.T, (b * world_size,), device=where, generator=generator)
    eps = torch.randn((b * world_size, *x0.shape[1:]), device=where, dtype=x0.dtype, generator=generator)
    t, eps = t[rank * b : (rank + 1) * b].to(x0.device), eps[rank * b : (rank + 1) * b].to(x0.device)
    pred = model(q_sample(schedule, x0, t, eps), t)
    if min_snr_gamma <= 0:
        return F.mse_loss(pred.float(), eps)
    ab = schedule.alpha_bar.to(x0.device)[t]
    snr = ab / (1 - ab)
    weight = (snr.clamp(max=min_snr_gamma) / snr).float()
    per_image = (pred.float() - eps).pow(2).flatten(1).mean(1)
    return (weight * per_image).mean()
