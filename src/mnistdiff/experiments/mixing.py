"""Rules for mixing two latents (or two images) with weight w: 0 gives a, 1 gives b."""

from __future__ import annotations

import torch

from mnistdiff.tensors import append_dims


def _norm(x: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean norm, shaped to broadcast: (B, 1, 1, 1)."""
    return append_dims(x.flatten(1).norm(dim=1), x.dim())


def linear(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """(1 - w) a + w b, the report's rule. For independent Gaussian latents the 50/50 mix has
    norm about sqrt(0.5) = 0.71 of a typical latent: it falls off the shell the model was trained on."""
    return (1 - w) * a + w * b


def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation, as the DDIM paper interpolates latents (Sec. 5.4 of Song et al. 2021)."""
    cos = ((a.flatten(1) * b.flatten(1)).sum(1) / (a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1))).clamp(-1, 1)
    theta = append_dims(torch.arccos(cos), a.dim())
    sin = torch.sin(theta)
    # Nearly parallel inputs: the spherical weights tend to the linear ones.
    safe = sin.abs() > 1e-6
    wa = torch.where(safe, torch.sin((1 - w) * theta) / torch.where(safe, sin, 1.0), torch.full_like(sin, 1 - w))
    wb = torch.where(safe, torch.sin(w * theta) / torch.where(safe, sin, 1.0), torch.full_like(sin, w))
    return wa * a + wb * b


def linear_norm(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """The linear mix rescaled to the linearly interpolated norm of a and b."""
    mix = linear(a, b, w)
    return mix * ((1 - w) * _norm(a) + w * _norm(b)) / _norm(mix).clamp_min(1e-12)


RULES = {"linear": linear, "slerp": slerp, "linear-norm": linear_norm}
