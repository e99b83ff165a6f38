"""Inversion-merge: invert two images to latents with deterministic DDIM, mix, decode."""

from __future__ import annotations

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.experiments.mixing import RULES, linear
from mnistdiff.samplers import ddim_invert, sample_ddim

# The weights of b in the report's merge figures, and the merge command's default.
WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)


def merge(model, schedule: Schedule, a: torch.Tensor, b: torch.Tensor, weights: list[float], *,
          rule: str = "linear", levels: list[int], clip_x0: bool = False,
          iterations: int = 0) -> dict[str, torch.Tensor]:
    """a, b: (B, C, H, W) in [-1, 1]. Returns the reconstructions of a and b, and for each weight
    the decoded latent mix and the pixel mix, each (W, B, C, H, W). `levels`: the DDIM levels of
    inversion and decoding, as samplers.levels gives; `iterations`: ddim_invert's refinement.

    Decoding does not clip x0 by default: inverted latents are not standard Gaussian (their
    std is about 0.8 on MNIST), the predicted x0 at high noise leaves [-1, 1], and clipping
    it there turns reconstructions into other digits."""
    if rule not in RULES:
        raise ValueError(f"unknown mixing rule {rule!r}: choose one of {', '.join(RULES)}")
    latents = ddim_invert(model, torch.cat([a, b]), schedule, levels, iterations=iterations)
    za, zb = latents.chunk(2)
    mixes = torch.cat([RULES[rule](za, zb, w) for w in weights])
    decoded = sample_ddim(model, torch.cat([latents, mixes]), schedule, levels, clip_x0=clip_x0)
    recon_a, recon_b, mixed = decoded[: len(a)], decoded[len(a) : 2 * len(a)], decoded[2 * len(a) :]
    return {
        "recon_a": recon_a,
        "recon_b": recon_b,
        "latent_mix": mixed.view(len(weights), *a.shape),
        "pixel_mix": torch.stack([linear(a, b, w) for w in weights]),
    }
