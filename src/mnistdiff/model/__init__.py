"""The noise-prediction network, its preconditioning wrapper and its named presets."""

from mnistdiff.model.preconditioning import EDMPreconditioning, precondition
from mnistdiff.model.presets import PRESETS, Preset, TrainConfig, get_preset
from mnistdiff.model.unet import UNet, UNetConfig

__all__ = ["PRESETS", "EDMPreconditioning", "Preset", "TrainConfig", "UNet", "UNetConfig", "get_preset",
           "precondition"]
