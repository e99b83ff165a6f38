"""mnistdiff: DDPM and DDIM on MNIST, in plain PyTorch."""

from __future__ import annotations

import os

# OpenMP threads that spin while they wait (its default) made a forward pass 9x slower on a 2-core
# machine shared with other jobs; passive ones kept it at one thread's speed (docs/speed.md). OpenMP
# reads this once, when torch loads it, so it must come before the first torch import; a value the
# user has set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

from torch import nn  # noqa: E402

from mnistdiff.allocator import keep_freed_memory  # noqa: E402
from mnistdiff.diffusion import Schedule, make_schedule  # noqa: E402

__version__ = "0.1.0"
__all__ = ["load_checkpoint", "keep_freed_memory"]


def load_checkpoint(path: str | Path | None = None, *, ema: bool = True) -> tuple[nn.Module, Schedule, dict]:
    """(model, schedule, config) from a run folder or checkpoint, or without a path the model shipped
    with the package; the EMA weights unless ema=False.

    The model is in eval mode; model(xt, t) takes xt (B, C, H, W) in [-1, 1] and t (B,) int64
    in 0..T-1 and returns the predicted eps.
    """
    from mnistdiff.model import UNet
    from mnistdiff.train import checkpoint

    config, weights = checkpoint.read(checkpoint.find(path))
    unet_cfg, _, sched_cfg = checkpoint.parse_config(config)
    model = UNet(unet_cfg)
    part = "ema" if ema else "model"
    if not weights[part]:
        raise ValueError(f"this checkpoint holds no {part} weights (exported models keep only the EMA)")
    model.load_state_dict(weights[part])
    return model.eval().requires_grad_(False), make_schedule(sched_cfg), config
