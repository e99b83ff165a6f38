"""EDM preconditioning (Karras et al. 2022, Table 1) as a wrapper around a network, as k-diffusion's
Denoiser: the network stays plain, and the wrapper scales what goes in and what comes out.

On the discrete levels, sigma^2 = (1 - ab) / ab with ab = alpha_bar[t], and EDM's variable is
x = xt / sqrt(ab). With r = 1 - ab (1 - sigma_data^2):

    c_in x = xt / sqrt(r)                                  what the network sees
    D = c_skip x + c_out F                                 the denoised image
    eps = (x - D) / sigma = sqrt(1 - ab) / r * xt - sigma_data sqrt(ab / r) * F

The last line is written out: it has no cancellation at any level, and it returns eps, so every
sampler and the inversion call the wrapped model as any other `model(xt, t) -> eps`.

A v-predicting network (Salimans & Ho 2022, Sec. 4), v = sqrt(ab) eps - sqrt(1 - ab) x0, gives
eps = sqrt(ab) v + sqrt(1 - ab) xt and x0 = sqrt(ab) xt - sqrt(1 - ab) v, well-posed at every level
(VPrediction). A consistency model (Song et al. 2023) on it is

    f(x, t) = c_skip x + c_out F,   F = sqrt(ab) xt - sqrt(1 - ab) v, the network's x0,
    c_skip = sigma_data^2 / (d^2 + sigma_data^2),   c_out = 1 - c_skip,   d = sigma - sigma_min

in EDM's x = xt / sqrt(ab), sigma_min the sigma of t = 0: f(x, t = 0) = x exactly (the boundary
condition), and its eps is (1 - c_skip) times the v-network's, exactly 0 at t = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistdiff.model.unet import UNetConfig

class EDMPreconditioning(nn.Module):
    """eps from `inner`, a network trained as EDM's F on the levels of `alpha_bar`. Holds no weights of
    its own: a checkpoint stores the inner network's."""

    def __init__(self, inner: nn.Module, alpha_bar: torch.Tensor, sigma_data: float = 0.5):
        super().__init__()
        self.inner = inner
        self.sigma_data = sigma_data
        # Not in the state dict: the checkpoint's schedule rebuilds it.
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    @property
    def config(self) -> UNetConfig:
        """The inner network's config (its image shape, its preconditioning)."""
        return self.inner.config

    def forward(self, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """xt: (B, C, H, W); t: (B,) int64 in 0..T-1; labels: (B,) for a conditional network (UNet.forward).
        Returns eps, (B, C, H, W)."""
        dtype = torch.promote_types(xt.dtype, torch.float32)  # the scaling in fp32 at least, under autocast too
        sd = self.sigma_data
        with torch.autocast(xt.device.type, enabled=False):
            ab = self.alpha_bar[t].to(dtype).view(-1, *([1] * (xt.dim() - 1)))  # (B, 1, 1, 1)
            r = 1 - ab * (1 - sd**2)
            x = xt.to(dtype)
        given = () if labels is None else (labels,)  # passed on only when given: any network fits
        f = self.inner((x / r.sqrt()).to(xt.dtype), t, *given)  # F(c_in x), (B, C, H, W)
        with torch.autocast(xt.device.type, enabled=False):
            return ((1 - ab).sqrt() / r * x - sd * (ab / r).sqrt() * f.to(dtype)).to(xt.dtype)


class VPrediction(nn.Module):
    """eps from `inner`, a network that predicts v on the levels of `alpha_bar`; with `boundary`, the
    consistency model on it (module docstring). Holds no weights of its own."""

    def __init__(self, inner: nn.Module, alpha_bar: torch.Tensor, sigma_data: float = 0.5, boundary: bool = False):
        super().__init__()
        self.inner = inner
        self.sigma_data, self.boundary = sigma_data, boundary
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    @property
    def config(self) -> UNetConfig:
        return self.inner.config

    def forward(self, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """As EDMPreconditioning.forward: eps (B, C, H, W), the arithmetic in fp32 at least."""
        dtype = torch.promote_types(xt.dtype, torch.float32)
        given = () if labels is None else (labels,)
        v = self.inner(xt, t, *given)  # (B, C, H, W)
        with torch.autocast(xt.device.type, enabled=False):
            ab = self.alpha_bar[t].to(dtype).view(-1, *([1] * (xt.dim() - 1)))  # (B, 1, 1, 1)
            eps = ab.sqrt() * v.to(dtype) + (1 - ab).sqrt() * xt.to(dtype)
            if self.boundary:
                ab_min = self.alpha_bar[:1].to(dtype)  # as ab is at t = 0, so that d is exactly 0 there
                d2 = (((1 - ab) / ab).sqrt() - ((1 - ab_min) / ab_min).sqrt()) ** 2
                eps = eps * (d2 / (d2 + self.sigma_data**2))  # 1 - c_skip
            return eps.to(xt.dtype)


def precondition(network: nn.Module, alpha_bar: torch.Tensor) -> nn.Module:
    """The model the samplers call: `network` as it is, or wrapped as its config's `preconditioning` says."""
    cfg = network.config
    if cfg.preconditioning == "edm":
        return EDMPreconditioning(network, alpha_bar, cfg.sigma_data)
    if cfg.preconditioning in ("v", "consistency"):
        return VPrediction(network, alpha_bar, cfg.sigma_data, boundary=cfg.preconditioning == "consistency")
    return network
