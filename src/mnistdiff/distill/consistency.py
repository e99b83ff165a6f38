"""Consistency distillation (Song et al. 2023, Algorithm 2): a function f(x, t) that maps every point
of a probability-flow ODE trajectory to the trajectory's start, learnt from one ODE step of the teacher.

f(x, t) = c_skip(t) x + c_out(t) F(x, t), with c_skip(t_min) = 1 and c_out(t_min) = 0 so that
f(x, t_min) = x exactly (the boundary condition; t_min = 0, the lowest level): the "consistency"
preconditioning of model/preconditioning.py, F the x0 of a v-predicting network, c_skip Song et al.'s
(Appendix C) and c_out = 1 - c_skip, so that x0 is well-posed at every level, as for the progressive
student. It hands f to the samplers as eps, so that the x0 a sampler predicts at (x, t) is f. The teacher's one-step solver is DDIM (eta = 0), between adjacent
levels of an N-level grid from 0 to T - 1 spaced evenly in log-SNR (samplers.levels' "logsnr").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mnistdiff.diffusion import Schedule, q_sample
from mnistdiff.distill.levels import ddim_steps, draw_on_grid, lookup, x0_from_eps
from mnistdiff.samplers.levels import logsnr_grid

DEFAULT_LEVELS = 40


def check_levels(levels: int, T: int) -> None:
    if not 2 <= levels <= T:
        raise ValueError(f"--levels: the consistency grid needs 2 to T = {T} levels, got {levels}")


def pseudo_huber(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sqrt(|a - b|^2 + c^2) - c per image, c = 0.00054 sqrt(d) for d values an image (Song & Dhariwal
    2023, Sec. 3.3): like the L2 distance for large errors, like its square for small ones."""
    c = 0.00054 * math.sqrt(a[0].numel())
    return ((a - b).pow(2).flatten(1).sum(1) + c**2).sqrt() - c


@dataclass(frozen=True, eq=False)
class ConsistencyLoss:
    """Consistency distillation of `teacher` (an eps model, frozen) on a `levels`-level grid: for x0
    and adjacent levels t_n < t_{n+1} of the grid, x = q_sample(x0, t_{n+1}, eps) and the teacher's
    DDIM step x' at t_n; the loss is d(f(x, t_{n+1}), f^-(x', t_n)), d the pseudo-Huber distance,
    f the student and f^- `target`, the run's EMA of it, without gradients (Song et al. 2023, Eq. 7,
    lambda = 1).

    Called as the training losses are; `model` is the student as eps, whose x0 prediction is f.
    """

    teacher: nn.Module
    target: nn.Module
    levels: int = DEFAULT_LEVELS

    def grid(self, schedule: Schedule) -> dict[int, int]:
        """Each level above the lowest of the grid, with the level below it."""
        grid = logsnr_grid(self.levels, schedule)
        return dict(zip(grid[1:], grid[:-1]))

    def __call__(self, model, schedule: Schedule, x0: torch.Tensor, generator: torch.Generator | None = None,
                 shard: tuple[int, int] = (0, 1), labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("distillation takes an unconditional teacher: no labels")
        below = self.grid(schedule)
        t, eps = draw_on_grid(schedule, x0, list(below), generator, shard)
        t_low = lookup(below, t, schedule.T)
        x = q_sample(schedule, x0, t, eps)
        with torch.no_grad():
            x_low = ddim_steps(x, self.teacher(x, t).to(x.dtype), t, t_low, schedule)
            goal = x0_from_eps(x_low, self.target(x_low, t_low).to(x.dtype), t_low, schedule)
        f = x0_from_eps(x, model(x, t).to(x.dtype), t, schedule)
        return pseudo_huber(f, goal).mean()
