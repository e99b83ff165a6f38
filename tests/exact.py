"""Noise predictors known in closed form, for data whose distribution we choose."""

from __future__ import annotations

import torch

from mnistdiff.diffusion import Schedule


class GaussianData:
    """E[eps | x_t] for data x0 ~ N(mean, std^2) per pixel; std = 0 is a data set of one point."""

    def __init__(self, schedule: Schedule, mean: torch.Tensor | float, std: float):
        self.alpha_bar = schedule.alpha_bar
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.std = std

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar[t].view(-1, *([1] * (xt.dim() - 1)))
        x = xt.double()
        eps = (1 - ab).sqrt() * (x - ab.sqrt() * self.mean) / (ab * self.std**2 + 1 - ab)
        return eps.to(xt.dtype)
