"""What both distillation losses share: per-image levels, where the samplers take one level per batch.

Levels follow the samplers' convention: t in 0..T-1, and t = -1 for clean data (alpha_bar = 1).
"""

from __future__ import annotations

import torch

from mnistdiff.diffusion import Schedule, draw_noise
from mnistdiff.samplers.common import alpha_bar
from mnistdiff.samplers.ddim import ddim_update
from mnistdiff.tensors import append_dims


def abar(schedule: Schedule, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """alpha_bar[t] per image, (B, 1, 1, 1) in the dtype of `like`, with alpha_bar[-1] = 1."""
    ab = schedule.alpha_bar.to(like.device)[t.clamp(min=0)]
    return append_dims(torch.where(t < 0, torch.ones_like(ab), ab).to(like.dtype), like.dim())


def x0_from_eps(xt: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """x0 from Eq. 4 of Ho et al. 2020 inverted, per image (samplers.common.predict_x0 for one level)."""
    ab = abar(schedule, t, xt)
    return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()


def x0_loss(model, z: torch.Tensor, t: torch.Tensor, target: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The student's x0 prediction at (z, t) against `target`, with the truncated SNR weight max(SNR(t), 1)
    of Salimans & Ho 2022 (Sec. 4), which is max(|x - x^|^2, |eps - eps^|^2); `model` gives eps."""
    pred = x0_from_eps(z, model(z, t).to(z.dtype), t, schedule)
    ab = abar(schedule, t, z).flatten()
    weight = (ab / (1 - ab)).clamp(min=1)
    return (weight * (pred - target).pow(2).flatten(1).mean(1)).mean()


@torch.no_grad()
def ddim_steps(x: torch.Tensor, eps: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor,
               schedule: Schedule) -> torch.Tensor:
    """The deterministic DDIM update (samplers.ddim_update, eta = 0) from t_from[i] to t_to[i] for each
    image i, with the samplers' own function: one call per distinct pair of levels in the batch."""
    out = torch.empty_like(x)
    pairs = torch.stack([t_from, t_to], 1)
    for a, b in torch.unique(pairs, dim=0).tolist():
        rows = (pairs[:, 0] == a) & (pairs[:, 1] == b)
        out[rows] = ddim_update(x[rows], eps[rows], alpha_bar(schedule, a), alpha_bar(schedule, b))
    return out


def draw_on_grid(schedule: Schedule, x0: torch.Tensor, grid: list[int], generator: torch.Generator | None,
                 shard: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """t (B,), each uniform over the levels of `grid`, and eps like x0: drawn for the whole global batch
    and sliced for this process, as the training losses draw them (diffusion.draw_noise)."""
    density = torch.zeros(schedule.T, dtype=torch.float64)
    density[grid] = 1.0 / len(grid)
    return draw_noise(schedule, x0, density, False, generator, shard)


def lookup(pairs: dict[int, int], t: torch.Tensor, T: int) -> torch.Tensor:
    """pairs[t[i]] for each image: a level's neighbour on a grid, as a tensor like t."""
    table = torch.full((T,), -2, dtype=torch.long)
    for a, b in pairs.items():
        table[a] = b
    return table.to(t.device)[t]
