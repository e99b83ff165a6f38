"""A deeper UNet that starts out computing exactly what a trained one computes.

`deepen(model, blocks)` gives each level more ResBlocks. The new blocks start as identities: the
last convolution of each is zero, so it adds nothing to its residual, and an attention it is
followed by has a zero output projection. On the way up, where a block also reads a skip
connection, a new block's 1x1 shortcut passes the image through and ignores the skip. The extra
skips on the way down are copies of the level's last one, which the first block up reads, as
before; the old blocks keep their order and their skips. So the deeper model's output equals the
old one's at every input, and training goes on from the old model's loss instead of from scratch.
Zero last layers still learn: their gradients come from their inputs, which are not zero.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from mnistdiff.model.unet import Attention, ResBlock, UNet

SHARED = ("time_mlp", "stem", "downsample", "mid", "upsample", "out_norm", "out", "full_res", "label_embedding")


def deepen(model: UNet, blocks: int) -> UNet:
    """A copy of `model` with `blocks` ResBlocks per level (at least the model's), same outputs."""
    cfg = model.config
    if blocks < cfg.blocks:
        raise ValueError(f"--blocks {blocks}: a model can only grow deeper; it has {cfg.blocks} per level")
    new = UNet(replace(cfg, blocks=blocks))
    for name in SHARED:
        if hasattr(model, name):  # full_res only where the shape has it
            getattr(new, name).load_state_dict(getattr(model, name).state_dict())
    extra = blocks - cfg.blocks
    for old, level in zip(model.down, new.down):
        for k in range(blocks):
            _copy_or_identity(old.res, old.attn, k if k < cfg.blocks else None, level.res[k], level.attn[k])
    order = [0] + [None] * extra + list(range(1, cfg.blocks + 1))  # old block for each new one, going up
    for old, level in zip(model.up, new.up):
        for j, k in enumerate(order):
            _copy_or_identity(old.res, old.attn, k, level.res[j], level.attn[j])
    return new.to(next(model.parameters()).device)


def _copy_or_identity(old_res, old_attn, k: int | None, res: ResBlock, attn: nn.Module) -> None:
    if k is not None:
        res.load_state_dict(old_res[k].state_dict())
        attn.load_state_dict(old_attn[k].state_dict())
        return
    with torch.no_grad():
        nn.init.zeros_(res.conv2.weight)
        nn.init.zeros_(res.conv2.bias)
        if isinstance(res.skip, nn.Conv2d):  # reads [image, skip]: pass the image through
            c = res.skip.out_channels
            res.skip.weight.zero_()
            res.skip.weight[:, :c, 0, 0] = torch.eye(c)
            nn.init.zeros_(res.skip.bias)
        if isinstance(attn, Attention):
            nn.init.zeros_(attn.out.weight)
            nn.init.zeros_(attn.out.bias)
