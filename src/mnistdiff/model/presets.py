"""Named model shapes, each with the training settings it was tuned with."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from mnistdiff.model.unet import UNetConfig
from mnistdiff.precision import PRECISIONS


def option(default, help: str, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, below: float | None = None, choices: tuple[str, ...] | None = None):
    """A TrainConfig field: its default, the help text of its `train` flag, and what values it takes
    (from `minimum` to `maximum`, strictly between `above` and `below`, one of `choices`; numbers finite)."""
    return field(default=default, metadata={"help": help, "minimum": minimum, "maximum": maximum, "above": above,
                                            "below": below, "choices": choices})


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; a preset's defaults. Each field is also a flag of `mnistdiff train`
    (cli/parser.py builds them from these fields), so a new field needs nothing else."""

    steps: int = option(20_000, "total optimizer steps", minimum=1)
    batch_size: int = option(64, "images per optimizer step", minimum=1)
    lr: float = option(5e-4, "peak learning rate of AdamW", above=0)
    warmup: int = option(200, "steps of linear learning-rate warm-up", minimum=0)
    lr_decay: str = option("constant", "after warm-up: constant, or cosine down to 0 at --steps",
                           choices=("constant", "cosine"))
    min_snr_gamma: float = option(0.0, "weight each image's loss by min(SNR, gamma)/SNR (0: the plain MSE)", minimum=0)
    level_density: str = option("uniform", "how training draws the noise levels: uniform over 0..T-1, or "
                                 "lognormal in sigma (EDM's) mixed with --level-uniform uniform draws",
                                 choices=("uniform", "lognormal"))
    level_mean: float = option(-1.2, "mean of log sigma under --level-density lognormal")
    level_std: float = option(1.2, "standard deviation of log sigma under --level-density lognormal", above=0)
    level_uniform: float = option(0.2, "share of uniform draws mixed into --level-density lognormal", minimum=0,
                                  below=1)
    level_draw: str = option("random", "how a batch draws its levels from --level-density: each on its own "
                              "(random), or one from each of batch-size equal slices of it (stratified)",
                              choices=("random", "stratified"))
    weight_decay: float = option(0.0, "AdamW's weight decay", minimum=0)
    grad_clip: float = option(1.0, "clip the gradient's norm to this", above=0)
    ema_decay: float = option(0.999, "decay of the EMA copy of the weights that sampling uses", minimum=0,
                              below=1)
    precision: str = option("auto", "bf16 autocast, fp32, or auto: bf16 where the device has bf16 units "
                                    "(AVX512-BF16 or AMX on a CPU), else fp32", choices=PRECISIONS)
    seed: int = option(0, "seed of the weights, the data order, t and the noise", minimum=0, below=2**63)
    log_every: int = option(50, "write a row of log.csv every N steps", minimum=1)
    sample_every: int = option(1000, "write a sample grid every N steps", minimum=1)
    checkpoint_every: int = option(500, "save a checkpoint every N steps", minimum=1)
    grid_images: int = option(64, "images in each sample grid", minimum=1)
    grid_steps: int = option(50, "DDIM steps of each sample grid", minimum=1)
    fid_every: int = option(0, "log the FID of DDIM samples to fid.csv every N steps (0: never)", minimum=0)
    fid_images: int = option(1000, "images per FID check", minimum=1)
    fid_steps: int = option(50, "DDIM steps of the FID checks", minimum=1)
    skip_nonfinite: int = option(0, "batches with a NaN or inf loss or gradient to skip before stopping "
                                    "(0: stop at the first)", minimum=0)
    label_dropout: float = option(0.1, "share of a conditional model's labels replaced by 'no label' in each batch, "
                                       "so that the model also learns to sample without one", minimum=0, maximum=1)

    def __post_init__(self):
        for f in fields(self):
            value, flag, m = getattr(self, f.name), "--" + f.name.replace("_", "-"), f.metadata
            if m.get("choices") and value not in m["choices"]:
                raise ValueError(f"{flag} must be one of {', '.join(m['choices'])}, got {value!r}")
            if isinstance(value, str):
                continue
            if not math.isfinite(value):
                raise ValueError(f"{flag} must be a finite number, got {value}")
            if m.get("minimum") is not None and value < m["minimum"]:
                raise ValueError(f"{flag} must be at least {m['minimum']}, got {value}")
            if m.get("maximum") is not None and value > m["maximum"]:
                raise ValueError(f"{flag} must be at most {m['maximum']}, got {value}")
            if m.get("above") is not None and value <= m["above"]:
                raise ValueError(f"{flag} must be a finite number above {m['above']}, got {value}")
            if m.get("below") is not None and value >= m["below"]:
                raise ValueError(f"{flag} must be below {m['below']}, got {value}")


# UNetConfig fields a new run may set (train's flags and keywords), beside the TrainConfig fields.
MODEL_SETTINGS = ("preconditioning", "sigma_data", "base", "blocks", "full_res")


@dataclass(frozen=True)
class Preset:
    unet: UNetConfig
    train: TrainConfig = field(default_factory=TrainConfig)


# The CPU recipe (docs/training.md says how it was chosen): a cosine decay (over --steps, or --minutes when that
# ends first), Min-SNR-5 weighting, peak lr 2e-3.
CPU_RECIPE = TrainConfig(steps=20_000, batch_size=64, lr=2e-3, warmup=200, ema_decay=0.999, lr_decay="cosine",
                         min_snr_gamma=5.0)

# The patch shape's recipe: the CPU recipe with the levels drawn more often in the middle (about 62% of
# the draws at t = 300 to 699, where deterministic sampling loses most), one from each slice of that
# density per batch. The loss's optimum at each level is unchanged (docs/training.md).
PATCH_RECIPE = replace(CPU_RECIPE, level_density="lognormal", level_mean=1.0, level_std=1.0, level_uniform=0.3,
                       level_draw="stratified")

PRESETS: dict[str, Preset] = {
    # For tests: a few seconds of CPU time.
    "tiny": Preset(
        UNetConfig(base=8, mults=(1, 2), blocks=1, attn_levels=(1,), heads=2, groups=4, dropout=0.0),
        TrainConfig(steps=200, batch_size=16, lr=2e-3, warmup=10, precision="fp32",
                    log_every=10, sample_every=100, checkpoint_every=50, grid_images=16, grid_steps=10),
    ),
    # The CPU default; docs/model.md says how this shape was chosen.
    "small": Preset(
        UNetConfig(base=32, mults=(1, 2, 2), blocks=1, attn_levels=(2,), heads=4, groups=8, dropout=0.0),
        CPU_RECIPE,
    ),
    # A UNet that sees 2x2 pixel patches (28x28 -> 14x14 -> 7x7), with a 32-channel correction at 28x28: about
    # as many weights as the deepened small model, at 1.6 times small's images per second (docs/training.md).
    "patch": Preset(
        UNetConfig(base=48, mults=(1, 2), blocks=1, attn_levels=(1,), heads=4, groups=8, dropout=0.0, patch=2,
                   full_res=32),
        PATCH_RECIPE,
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
