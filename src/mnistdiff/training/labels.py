"""Label dropout for class-conditional training (classifier-free guidance, Ho & Salimans 2022)."""

from __future__ import annotations

import torch


def drop_labels(labels: torch.Tensor, p: float, no_label: int, generator: torch.Generator | None = None,
                shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """`labels` (B,) with each replaced by `no_label` with probability `p`, so that one model learns
    both the conditional and the unconditional eps that guidance mixes.

    `shard` (rank, world_size): labels are slice `rank` of a global batch `world_size` times larger;
    the draws are made for the whole global batch on the generator's device and sliced alike, as the
    loss draws t and eps (diffusion.py), so a data-parallel or resumed run drops the labels one plain
    run would. p = 0 keeps every label and p = 1 drops every one, exactly (u < p, u in [0, 1)).
    """
    rank, world_size = shard
    b = labels.shape[0]
    where = generator.device if generator is not None else labels.device
    u = torch.rand(b * world_size, device=where, dtype=torch.float64, generator=generator)
    drop = (u < p)[rank * b : (rank + 1) * b].to(labels.device)  # (B,)
    return torch.where(drop, torch.full_like(labels, no_label), labels)
