"""Sample 16 digits with DDIM-50 from the shipped model, invert them to latents, decode them back.

    python examples/api.py [STEPS]
"""

import sys

import torch

from mnistdiff import SAMPLERS, ddim_invert, levels, load_checkpoint

model, schedule, _ = load_checkpoint()  # the model shipped with the package
grid = levels(int(sys.argv[1]) if len(sys.argv) > 1 else 50, schedule)  # [980, 960, ..., 0, -1] for 50
ddim = SAMPLERS["ddim"]
x_T = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
digits = ddim(model, x_T, schedule, grid, clip_x0=True)  # (16, 1, 28, 28) in [-1, 1]
latents = ddim_invert(model, digits, schedule, grid)
decoded = ddim(model, latents, schedule, grid)  # no clipping: inverted latents are not quite N(0, 1)
print(f"reconstruction error: {((decoded - digits) / 2).pow(2).mean():.2e} (per-pixel MSE on [0, 1])")
