"""Tensor shaping that every stage of the pipeline may use."""

from __future__ import annotations

import torch


def append_dims(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """`x` with singleton dimensions appended up to `ndim`, e.g. per-sample values (B,) -> (B, 1, 1, 1)
    to broadcast against images (B, C, H, W); as k-diffusion's append_dims."""
    missing = ndim - x.dim()
    if missing < 0:
        raise ValueError(f"x has {x.dim()} dimensions, more than the {ndim} asked for")
    return x[(...,) + (None,) * missing]
