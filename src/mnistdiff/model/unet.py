"""The UNet noise predictor: model(xt, t) -> eps.

A plain network: with `preconditioning="edm"` in its config it is trained as EDM's F, and
model/preconditioning.py wraps it to give eps.

ResNet blocks with a time embedding added in the middle (Ho et al. 2020,
App. B), multi-head self-attention at chosen levels, stride-2 convolutions
down and nearest-neighbour upsampling. With two downsamplings a 28x28 image
goes 28 -> 14 -> 7 and back, so MNIST needs no padding or resizing. With
`patch=2` the network sees each 2x2 block of pixels as 4 channels of one
position (a pixel unshuffle, undone on the way out), so it starts at 14x14:
the same image for a quarter of the positions at full resolution; `full_res`
adds a small correction computed at 28x28 (FullRes). Ways
to run it faster (a GroupNorm that compiles better on CPUs, the memory
layout) are in mnistdiff/runtime.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """The shape of a UNet. `attn_levels` index `mults` (0 = full resolution)."""

    in_channels: int = 1
    image_size: int = 28
    base: int = 64
    mults: tuple[int, ...] = (1, 2, 4)
    blocks: int = 2
    attn_levels: tuple[int, ...] = (2,)
    heads: int = 4
    groups: int = 32
    dropout: float = 0.1
    # "edm": the network is EDM's F, wrapped (model/preconditioning.py); "v": it predicts v;
    # "consistency": a consistency model on a v-network, with its boundary condition
    preconditioning: str = "none"
    sigma_data: float = 0.5  # EDM's data standard deviation
    patch: int = 1  # side of the pixel blocks the network sees as channels (1: each pixel)
    full_res: int = 0  # channels of a refinement at the image's own resolution after the head (0: none)
    classes: int = 0  # class labels the model is conditioned on (0: unconditional); label `classes` is "no label"
    distilled_steps: int = 0  # the sampling steps a distilled student was trained for (0: not a student)
    # how a student was distilled ("progressive", "consistency", "trajectory"); "" before this was kept
    distilled_by: str = ""

    def __post_init__(self):
        if self.preconditioning not in ("none", "edm", "consistency", "v"):
            raise ValueError(f"unknown preconditioning {self.preconditioning!r}: use 'none' or 'edm'")
        if not (self.sigma_data > 0 and math.isfinite(self.sigma_data)):
            raise ValueError(f"--sigma-data must be a positive number, got {self.sigma_data}")
        if self.patch < 1 or self.image_size % self.patch:
            raise ValueError(f"patch {self.patch}: must be at least 1 and divide the image side {self.image_size}")
        side, halvings = self.image_size // self.patch, len(self.mults) - 1
        if side % 2**halvings:
            raise ValueError(f"patch {self.patch}: the network's {side}-pixel side cannot be halved {halvings} times")
        for mult in self.mults:
            width = self.base * mult
            if width % self.groups:
                raise ValueError(f"--base {self.base}: level width {width} must be a multiple of the "
                                 f"{self.groups} GroupNorm groups")
        for level in self.attn_levels:
            if self.base * self.mults[level] % self.heads:
                raise ValueError(f"--base {self.base}: attention width {self.base * self.mults[level]} "
                                 f"must be a multiple of the {self.heads} heads")
        if self.blocks < 1:
            raise ValueError(f"--blocks must be at least 1, got {self.blocks}")
        if self.full_res < 0:
            raise ValueError(f"--full-res must be 0 (none) or a number of channels, got {self.full_res}")
        if self.classes < 0:
            raise ValueError(f"classes must be 0 (unconditional) or a number of classes, got {self.classes}")
        if self.distilled_steps < 0:
            raise ValueError(f"distilled_steps must be 0 (not a student) or a number of steps, "
                             f"got {self.distilled_steps}")
        if self.distilled_by not in ("", "progressive", "consistency", "trajectory"):
            raise ValueError(f"unknown distillation method {self.distilled_by!r}")


def upsample_nearest(h: torch.Tensor) -> torch.Tensor:
    """Each pixel repeated 2x2, as F.interpolate(h, scale_factor=2, mode="nearest"). Under torch.compile
    it is written as a broadcast, bit for bit the same: torch 2.13's compiled bf16 backward of
    interpolate gives zero gradients at 14x14, which left the `small` shape's lower levels untrained
    (docs/speed.md). Eager code keeps interpolate, which ran faster in a short eager timing."""
    if torch.compiler.is_compiling():
        b, c, height, width = h.shape
        return h[:, :, :, None, :, None].expand(b, c, height, 2, width, 2).reshape(b, c, 2 * height, 2 * width)
    return F.interpolate(h, scale_factor=2.0, mode="nearest")


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer position encoding of the timestep: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """x: (B, c_in, H, W); temb: (B, t_dim). Returns (B, c_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        h = h + self.time(temb)[:, :, None, None]  # the timestep, added to every position
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)  # (B, 3, heads, C/heads, HW)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (B, heads, HW, C/heads)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """ResBlocks at one resolution, from each of `c_ins` channels to `c_out`, each followed by attention
    where the level has it (else an identity)."""

    def __init__(self, c_ins: list[int], c_out: int, t_dim: int, attn: bool, cfg: UNetConfig):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(c, c_out, t_dim, cfg.groups, cfg.dropout) for c in c_ins)
        self.attn = nn.ModuleList(
            Attention(c_out, cfg.heads, cfg.groups) if attn else nn.Identity() for _ in c_ins
        )


class FullRes(nn.Module):
    """A correction at the image's own resolution, for a UNet that sees pixel patches: the output layer's
    features mapped to `width` channels per pixel (a pixel shuffle), the noisy image beside them, two
    3x3 convolutions with the time embedding between. Its last convolution starts at zero, so a new
    model starts as the plain patch model would."""

    def __init__(self, c: int, width: int, patch: int, in_channels: int, t_dim: int):
        super().__init__()
        self.patch = patch
        self.features = nn.Conv2d(c, width * patch**2, 1)
        self.conv1 = nn.Conv2d(width + in_channels, width, 3, padding=1)
        self.time = nn.Linear(t_dim, width)
        self.conv2 = nn.Conv2d(width, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, a: torch.Tensor, xt: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """a: (B, c, H / patch, W / patch), the UNet's last features; xt: (B, C, H, W). Returns (B, C, H, W)."""
        f = self.features(a)  # (B, width patch^2, H / patch, W / patch)
        f = F.pixel_shuffle(f, self.patch) if self.patch > 1 else f  # (B, width, H, W)
        h = self.conv1(torch.cat([F.silu(f), xt], dim=1)) + self.time(temb)[:, :, None, None]
        return self.conv2(F.silu(h))


class UNet(nn.Module):
    """The noise predictor: forward(xt, t) -> eps, or EDM's F where the config says so (the wrapper in
    model/preconditioning.py turns F into eps).

    With `classes` > 0, forward(xt, t, labels) is conditioned on a class label, added to the time
    embedding as classifier-free guidance's models do (Ho & Salimans 2022): label `classes` is the
    learned "no label" entry, which training puts in place of a share of the labels. The label
    embedding starts at zero, so a conditional model whose other weights come from an unconditional
    one starts with exactly that model's outputs, for every label.
    """

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.config = cfg
        widths = [cfg.base * m for m in cfg.mults]  # channels at each resolution, full first
        t_dim = 4 * cfg.base
        channels = cfg.in_channels * cfg.patch**2  # what the network sees per position
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        if cfg.classes:
            self.label_embedding = nn.Embedding(cfg.classes + 1, t_dim)  # the last entry: "no label"
            nn.init.zeros_(self.label_embedding.weight)
        self.stem = nn.Conv2d(channels, cfg.base, 3, padding=1)

        # Down: `blocks` ResBlocks per level, then a stride-2 convolution; every output is kept as a skip.
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [cfg.base], cfg.base
        for i, w in enumerate(widths):
            self.down.append(Level([c] + [w] * (cfg.blocks - 1), w, t_dim, i in cfg.attn_levels, cfg))
            skips += [w] * cfg.blocks
            c = w
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)

        self.mid = Level([c, c], c, t_dim, True, cfg)

        # Up: `blocks` + 1 ResBlocks per level, each reading one skip, then nearest upsampling and a convolution.
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            c_ins = []
            for _ in range(cfg.blocks + 1):
                c_ins.append(c + skips.pop())
                c = w
            self.up.append(Level(c_ins, w, t_dim, i in cfg.attn_levels, cfg))
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))

        self.out_norm = nn.GroupNorm(cfg.groups, c)
        self.out = nn.Conv2d(c, channels, 3, padding=1)
        if cfg.full_res:
            self.full_res = FullRes(c, cfg.full_res, cfg.patch, cfg.in_channels, t_dim)

    def forward(self, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """xt: (B, C, H, W) in [-1, 1]; t: (B,) int64 in 0..T-1; labels: (B,) int64 in 0..classes, where
        `classes` means "no label" (None: no label for all; only a conditional model takes them).
        Returns eps (or F), (B, C, H, W)."""
        patch = self.config.patch
        temb = self.time_mlp(sinusoidal_embedding(t, self.config.base).to(xt.dtype))  # (B, 4 base)
        if self.config.classes:
            temb = temb + self.label_embedding(self._labels(labels, t)).to(temb.dtype)  # (B, 4 base)
        elif labels is not None:
            raise ValueError("this model is unconditional (classes = 0): it takes no labels")
        x = F.pixel_unshuffle(xt, patch) if patch > 1 else xt  # (B, C patch^2, H / patch, W / patch)
        h = self.stem(x)  # (B, base, h, w) with h, w the network's side
        skips = [h]
        for i, level in enumerate(self.down):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(h, temb))  # (B, width of level i, h / 2^i, w / 2^i)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # half the side
                skips.append(h)
        for res, attn in zip(self.mid.res, self.mid.attn):
            h = attn(res(h, temb))  # (B, widest, smallest side)
        for i, level in enumerate(self.up):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(torch.cat([h, skips.pop()], dim=1), temb))  # the skip's side and this level's width
            if i < len(self.upsample):
                h = self.upsample[i](upsample_nearest(h))  # twice the side
        a = F.silu(self.out_norm(h))  # (B, base, h, w)
        out = self.out(a)  # (B, C patch^2, h, w)
        out = F.pixel_shuffle(out, patch) if patch > 1 else out  # (B, C, H, W)
        return out + self.full_res(a, xt, temb) if self.config.full_res else out

    def _labels(self, labels: torch.Tensor | None, t: torch.Tensor) -> torch.Tensor:
        """labels (B,) int64, checked, or "no label" for each of the batch where they are None."""
        classes = self.config.classes
        if labels is None:
            return torch.full_like(t, classes, dtype=torch.long)
        if labels.dtype.is_floating_point or labels.shape != t.shape:
            raise ValueError(f"labels must be integers of shape {tuple(t.shape)}, got {labels.dtype} "
                             f"{tuple(labels.shape)}")
        # A data-dependent check is skipped under torch.compile, where it would break the graph.
        if not torch.compiler.is_compiling() and labels.numel() and (labels.min() < 0 or labels.max() > classes):
            raise ValueError(f"labels must lie in 0..{classes} ({classes}: no label), got "
                             f"{labels.min().item()}..{labels.max().item()}")
        return labels.long()


# Tensor names of checkpoints written before the up levels and the output layers had names -> today's.
_RENAMED = [
    (re.compile(r"^up\.(\d+)\.0\."), r"up.\1.res."),
    (re.compile(r"^up\.(\d+)\.1\."), r"up.\1.attn."),
    (re.compile(r"^head\.0\."), "out_norm."),
    (re.compile(r"^head\.2\."), "out."),
]


def renamed(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A UNet state dict with the tensor names of older checkpoints changed to today's; others kept."""
    out = {}
    for name, value in weights.items():
        for pattern, new in _RENAMED:
            name = pattern.sub(new, name)
        out[name] = value
    return out
