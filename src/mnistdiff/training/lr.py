"""The learning rate at each step: linear warm-up, then constant or a cosine decay that ends with
the steps or the time budget, whichever comes first."""

from __future__ import annotations

import math


def learning_rate(cfg, step: int, time_done: float | None = None) -> float:
    """Linear warm-up, then constant or a cosine decay to 0 at `cfg.steps`.

    `time_done` (0..1) is the share of a time budget spent: the decay then also ends when the
    budget does, whichever of steps and time comes first, so a run stopped by --minutes anneals.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.lr_decay == "constant":
        return cfg.lr
    if cfg.lr_decay == "cosine":
        done = decay_done(cfg, step)
        if time_done is not None:
            done = max(done, min(1.0, time_done))
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * done))
    raise ValueError(f"unknown lr_decay {cfg.lr_decay!r}: use 'constant' or 'cosine'")


def decay_done(cfg, step: int) -> float:
    """How far a cosine decay over `cfg.steps` has gone at `step` (0 during warm-up)."""
    return min(1.0, max(0, step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1))
