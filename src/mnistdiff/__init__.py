"""mnistdiff: DDPM and DDIM on MNIST, in plain PyTorch.

    from mnistdiff import SAMPLERS, ddim_invert, levels, load_checkpoint

    model, schedule, _ = load_checkpoint()        # the model shipped with the package
    grid = levels(50, schedule)                   # DDIM-50: [980, 960, ..., 0, -1]
    x0 = SAMPLERS["ddim"](model, x_T, schedule, grid)

examples/api.py is a complete script. Names load on first use, so `import mnistdiff` stays light.
"""

from __future__ import annotations

import importlib

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
    "load_checkpoint": "mnistdiff.loading",
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'mnistdiff' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
