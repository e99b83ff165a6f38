"""mnistdiff: DDPM and DDIM on MNIST, in plain PyTorch.

    from mnistdiff import SAMPLERS, ddim_invert, levels, load_checkpoint

    model, schedule, _ = load_checkpoint()        # the model shipped with the package
    grid = levels(50, schedule)                   # DDIM-50: [980, 960, ..., 0, -1]
    x0 = SAMPLERS["ddim"](model, x_T, schedule, grid)

examples/api.py is a complete script. Names load on first use, so `import mnistdiff` stays light.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from mnistdiff.diffusion import Schedule

__version__ = "0.1.0"

# name -> the module that defines it
_LAZY = {
    "UNet": "mnistdiff.model",
    "linear_schedule": "mnistdiff.diffusion",
    "cosine_schedule": "mnistdiff.diffusion",
    "levels": "mnistdiff.samplers",
    "register": "mnistdiff.samplers",
    "SAMPLERS": "mnistdiff.samplers",
    "ddim_invert": "mnistdiff.samplers",
    "generate": "mnistdiff.generation",
    "train": "mnistdiff.training",
    "keep_freed_memory": "mnistdiff.runtime",
}
__all__ = ["load_checkpoint", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'mnistdiff' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_checkpoint(path: str | Path | None = None, *, ema: bool = True) -> tuple[nn.Module, Schedule, dict]:
    """(model, schedule, config) from a run folder or checkpoint, or without a path the model shipped
    with the package; the EMA weights unless ema=False. A folder diffusers saved (a pipeline or a
    UNet2DModel with its scheduler config) loads too, behind the same interface.

    The model is in eval mode; model(xt, t) takes xt (B, C, H, W) in [-1, 1] and t (B,) int64
    in 0..T-1 and returns the predicted eps.
    """
    from mnistdiff.external.diffusers import is_diffusers_folder, load_diffusers

    if is_diffusers_folder(path):  # a folder diffusers saved: its UNet2DModel and scheduler (docs/diffusers.md)
        return load_diffusers(path)
    from mnistdiff.diffusion import make_schedule
    from mnistdiff.model import UNet
    from mnistdiff.training import checkpoint

    folder = checkpoint.find(path)
    config, weights = checkpoint.read(folder)  # checked against the checksums recorded beside them
    unet_cfg, _, sched_cfg = checkpoint.parse_config(config)
    schedule = make_schedule(sched_cfg)
    model = UNet(unet_cfg, schedule)
    part = "ema" if ema else "model"
    if not weights[part]:
        raise ValueError(f"this checkpoint holds no {part} weights (exported models keep only the EMA)")
    checkpoint.load_weights(model, weights[part], folder / "weights.safetensors")
    return model.eval().requires_grad_(False), schedule, config
