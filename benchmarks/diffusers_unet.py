"""diffusers' UNet2DModel at the shape closest to our `small` preset, behind our `model(xt, t) -> eps` call.

channels (32, 64, 64), one ResNet layer per block, attention at 7 x 7, GroupNorm with 8 groups:
1.11M parameters and 0.378 forward GFLOP per image, against small's 1.13M and 0.382.
diffusers is a benchmark-only dependency: `pip install diffusers`.
"""

from __future__ import annotations

import torch
from torch import nn


class DiffusersUNet(nn.Module):
    def __init__(self, layers_per_block: int = 1):
        super().__init__()
        from diffusers import UNet2DModel

        self.net = UNet2DModel(
            sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
            layers_per_block=layers_per_block, norm_num_groups=8, attention_head_dim=8,
            down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        )

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(xt, t).sample
