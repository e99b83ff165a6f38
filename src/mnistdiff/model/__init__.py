"""The noise-prediction network and its named presets."""

from mnistdiff.model.presets import PRESETS, Preset, TrainConfig, get_preset
from mnistdiff.model.unet import UNet, UNetConfig

__all__ = ["PRESETS", "Preset", "TrainConfig", "UNet", "UNetConfig", "get_preset"]
