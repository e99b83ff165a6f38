"""The DDPM forward process: noise schedules, q_sample and the training losses.

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

from mnistdiff.tensors import append_dims


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
    return append_dims(values.to(like.device)[t].to(like.dtype), like.dim())


def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) eps, Eq. 4 of Ho et al. 2020."""
    ab = _per_sample(schedule.alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def level_density(schedule: Schedule, kind: str = "uniform", mean: float = -1.2, std: float = 1.2,
                  uniform_share: float = 0.2) -> torch.Tensor | None:
    """How often training draws each level t: None for uniform over 0..T-1, else (T,) float64 probabilities.

    "lognormal": log sigma_t normal with `mean` and `std`, sigma_t = sqrt((1 - alpha_bar) / alpha_bar)
    (EDM's training density, Karras et al. 2022, on the discrete levels: each level gets the mass of
    the log-sigma interval it stands for), mixed with `uniform_share` of uniform draws so the
    levels near T, where every sampler starts, stay covered.
    """
    if kind == "uniform":
        return None
    if kind != "lognormal":
        raise ValueError(f"unknown level density {kind!r}: use 'uniform' or 'lognormal'")
    log_sigma = 0.5 * torch.log((1 - schedule.alpha_bar) / schedule.alpha_bar)
    width = torch.gradient(log_sigma)[0]  # the log-sigma interval around each level
    mass = torch.exp(-0.5 * ((log_sigma - mean) / std) ** 2) * width
    return (1 - uniform_share) * mass / mass.sum() + uniform_share / schedule.T


def draw_levels(schedule: Schedule, n: int, density: torch.Tensor | None = None, stratified: bool = False,
                generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """n levels t from `density` (None: uniform over 0..T-1), each drawn alone or, `stratified`, one from
    each of n equal slices of the distribution's probability, in random order.

    Stratified draws keep the same distribution for every image (each u below is uniform over [0, 1))
    but spread each batch evenly over the levels, so a batch's loss varies less from one batch to the
    next (the low-discrepancy draws of Kingma et al. 2021, Variational Diffusion Models, appendix).
    """
    if not stratified:
        if density is None:
            return torch.randint(0, schedule.T, (n,), device=device, generator=generator)
        return torch.multinomial(density.to(device), n, replacement=True, generator=generator)
    u = (torch.arange(n, device=device, dtype=torch.float64)
         + torch.rand(n, device=device, dtype=torch.float64, generator=generator)) / n
    u = u[torch.randperm(n, device=device, generator=generator)]
    if density is None:
        return (u * schedule.T).long().clamp(max=schedule.T - 1)
    cdf = density.to(device=device, dtype=torch.float64).cumsum(0)
    return torch.searchsorted(cdf, u * cdf[-1], right=True).clamp(max=schedule.T - 1)


def draw_noise(schedule: Schedule, x0: torch.Tensor, density: torch.Tensor | None, stratified: bool,
                generator: torch.Generator | None, shard: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """t (B,) and eps like x0 for this process's slice of the global batch (see EpsLoss)."""
    rank, world_size = shard
    b = x0.shape[0]
    # Drawn where the generator lives, so a CPU generator gives the same noise for any model device.
    where = generator.device if generator is not None else x0.device
    t = draw_levels(schedule, b * world_size, density, stratified, generator, where)
    eps = torch.randn((b * world_size, *x0.shape[1:]), device=where, dtype=x0.dtype, generator=generator)
    return t[rank * b : (rank + 1) * b].to(x0.device), eps[rank * b : (rank + 1) * b].to(x0.device)


@dataclass(frozen=True, eq=False)
class EpsLoss:
    """The simple eps-prediction MSE, Eq. 14 of Ho et al. 2020: every level weighs alike.

    `density` (T,) draws the levels from those probabilities instead of uniformly over 0..T-1
    (level_density); `stratified` spreads each batch's levels evenly over that distribution
    (draw_levels). The subclasses weight each image's error by its level (`weights`). None of
    these changes the loss's minimiser at any level: E[eps | x_t].

    Called as loss(model, schedule, x0, generator, shard, labels). `shard` (rank, world_size): x0 is
    slice `rank` of a global batch `world_size` times larger; t and eps are drawn for the whole
    global batch and sliced alike, so the processes of a data-parallel run together see the noise one
    process would. `labels` (B,), x0's class labels for a conditional model, go to the model with
    each image; None calls model(xt, t).
    """

    density: torch.Tensor | None = None
    stratified: bool = False

    def weights(self, schedule: Schedule) -> torch.Tensor | None:
        """Each level's weight on the error, (T,) float64; None: the plain mean."""
        return None

    def __call__(self, model, schedule: Schedule, x0: torch.Tensor, generator: torch.Generator | None = None,
                 shard: tuple[int, int] = (0, 1), labels: torch.Tensor | None = None) -> torch.Tensor:
        t, eps = draw_noise(schedule, x0, self.density, self.stratified, generator, shard)
        given = () if labels is None else (labels,)  # passed on only when given: any model fits
        pred = model(q_sample(schedule, x0, t, eps), t, *given)
        weights = self.weights(schedule)
        if weights is None:
            return F.mse_loss(pred.float(), eps)
        per_image = (pred.float() - eps).pow(2).flatten(1).mean(1)
        return (weights.to(x0.device)[t].float() * per_image).mean()


@dataclass(frozen=True, eq=False)
class MinSnrLoss(EpsLoss):
    """Min-SNR-gamma weights (Hang et al. 2023, eps form): min(SNR_t, gamma) / SNR_t. The low-noise
    steps, whose error is easy to lower and says little about shapes, count less."""

    gamma: float = 5.0

    def weights(self, schedule: Schedule) -> torch.Tensor:
        snr = schedule.alpha_bar / (1 - schedule.alpha_bar)
        return snr.clamp(max=self.gamma) / snr


@dataclass(frozen=True, eq=False)
class EdmLoss(EpsLoss):
    """The loss of an EDM-preconditioned network (Karras et al. 2022): lambda(sigma) sigma^2 =
    (sigma^2 + sigma_data^2) / sigma_data^2, EDM's weight on |D - x0|^2 written for eps; it makes
    the loss the plain MSE of the network's own output."""

    sigma_data: float = 0.5

    def weights(self, schedule: Schedule) -> torch.Tensor:
        sigma2 = (1 - schedule.alpha_bar) / schedule.alpha_bar
        return (sigma2 + self.sigma_data**2) / self.sigma_data**2


def training_loss(preconditioning: str = "none", sigma_data: float = 0.5, min_snr_gamma: float = 0.0,
                  density: torch.Tensor | None = None, stratified: bool = False) -> EpsLoss:
    """The loss a run's settings name: EdmLoss for an EDM-preconditioned model, else MinSnrLoss
    where min_snr_gamma > 0, else the plain EpsLoss; each with the run's level draws."""
    draws = {"density": density, "stratified": stratified}
    if preconditioning == "edm":
        if min_snr_gamma > 0:
            raise ValueError("--min-snr-gamma weights the plain eps loss; EDM preconditioning brings its own weights")
        return EdmLoss(sigma_data=sigma_data, **draws)
    if preconditioning != "none":
        raise ValueError(f"unknown preconditioning {preconditioning!r}: use 'none' or 'edm'")
    return MinSnrLoss(gamma=min_snr_gamma, **draws) if min_snr_gamma > 0 else EpsLoss(**draws)
