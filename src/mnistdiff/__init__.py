"""mnistdiff: DDPM and DDIM on MNIST, in plain PyTorch."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from mnistdiff.allocator import keep_freed_memory
from mnistdiff.diffusion import Schedule, make_schedule

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

    folder = checkpoint.find(path)
    config, weights = checkpoint.read(folder)  # checked against the checksums recorded beside them
    unet_cfg, _, sched_cfg = checkpoint.parse_config(config)
    model = UNet(unet_cfg)
    part = "ema" if ema else "model"
    if not weights[part]:
        raise ValueError(f"this checkpoint holds no {part} weights (exported models keep only the EMA)")
    checkpoint.load_weights(model, weights[part], folder / "weights.safetensors")
    return model.eval().requires_grad_(False), make_schedule(sched_cfg), config
