"""Named model shapes, each with the training settings it was tuned with."""

from __future__ import annotations

from dataclasses import dataclass, field

from mnistdiff.model.unet import UNetConfig


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; a preset's defaults, overridable from the CLI."""

    steps: int = 20_000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 200
    lr_decay: str = "constant"  # or "cosine": from lr after warm-up down to 0 at `steps`
    min_snr_gamma: float = 0.0  # > 0: Min-SNR-gamma loss weighting; 0: the plain MSE
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    precision: str = "bf16"
    seed: int = 0
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 500
    grid_images: int = 64
    grid_steps: int = 50
    fid_every: int = 0  # 0: no FID checks during training
    fid_images: int = 1000
    fid_steps: int = 50
    skip_nonfinite: int = 0  # batches with a NaN or inf loss or gradient to skip before stopping; 0: stop at the first


@dataclass(frozen=True)
class Preset:
    unet: UNetConfig
    train: TrainConfig = field(default_factory=TrainConfig)


PRESETS: dict[str, Preset] = {
    # For tests: a few seconds of CPU time.
    "tiny": Preset(
        UNetConfig(base=8, mults=(1, 2), blocks=1, attn_levels=(1,), heads=2, groups=4, dropout=0.0),
        TrainConfig(steps=200, batch_size=16, lr=2e-3, warmup=10, precision="fp32",
                    log_every=10, sample_every=100, checkpoint_every=50, grid_images=16, grid_steps=10),
    ),
    # The CPU default; see the README for how this shape was chosen.
    "small": Preset(
        UNetConfig(base=32, mults=(1, 2, 2), blocks=1, attn_levels=(2,), heads=4, groups=8, dropout=0.0),
        TrainConfig(steps=20_000, batch_size=64, lr=1e-3, warmup=200, ema_decay=0.999),
    ),
    # The report's shape: base width 64, multipliers (1, 2, 4), 4 heads, lr 5e-4, batch 64.
    "seed": Preset(
        UNetConfig(base=64, mults=(1, 2, 4), blocks=2, attn_levels=(2,), heads=4, groups=32, dropout=0.1),
        TrainConfig(steps=100_000, batch_size=64, lr=5e-4, warmup=1000, ema_decay=0.9999),
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
