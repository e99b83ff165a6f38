"""Sampling a consistency model: one model call, or a few with fresh noise between them."""

from __future__ import annotations

import math

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers.common import Callback, alpha_bar, call, check_levels, noise_like, predict_x0, progress_bar


@torch.no_grad()
def sample_consistency(
    model, x: torch.Tensor, schedule: Schedule, levels: list[int], *, generator: torch.Generator | None = None,
    clip_x0: bool = False, callback: Callback | None = None, progress: bool = False,
) -> torch.Tensor:
    """Multistep consistency sampling, Algorithm 1 of Song et al. 2023: x0 = f(x, t) at each level, then
    fresh noise takes x0 to the next level (q_sample), until clean data. The model's x0 prediction is
    f (a consistency model's eps, model/preconditioning.py); with levels [t, -1] it is one call."""
    levels = check_levels(levels, schedule.T)
    with progress_bar(len(levels) - 1, progress, "consistency") as bar:
        for t, t_next in zip(levels, levels[1:]):
            # The jump to the start of the trajectory through x.
            x0 = predict_x0(x, call(model, x, t), alpha_bar(schedule, t), clip_x0)
            # Back up to the next level with noise of its own (none at clean data).
            ab_next = alpha_bar(schedule, t_next)
            x = x0 if t_next < 0 else math.sqrt(ab_next) * x0 + math.sqrt(1 - ab_next) * noise_like(x, generator)
            if callback:
                callback(t_next, x, x0)
            bar.update()
    return x


sample_consistency.spacing = "trailing"  # one step starts at T - 1, the level of pure noise
