"""MNIST-family data: IDX files found on disk or downloaded, held once as uint8."""

from __future__ import annotations

from pathlib import Path

import torch

from mnistdiff.data.idx import DataFileError, read_split
from mnistdiff.data.locate import DATASETS, find_split

__all__ = ["DATASETS", "DataFileError", "load", "to_model_range", "to_uint8"]


def load(dataset: str = "mnist", split: str = "train", data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of one split."""
    images, labels = read_split(*find_split(dataset, split, data_dir))
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype("int64"))


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], clamping what falls outside."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
