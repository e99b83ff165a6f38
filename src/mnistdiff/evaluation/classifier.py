"""A small CNN digit classifier whose penultimate layer is the feature space for FID."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file

from mnistdiff import files
from torch import nn

FEATURES = 128


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class Classifier(nn.Module):
    """(B, 1, 28, 28) in [-1, 1] -> 10 logits; `features` gives the 128-d layer before them."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            *_conv(1, 32), *_conv(32, 32), nn.MaxPool2d(2),  # 14x14
            *_conv(32, 64), *_conv(64, 64), nn.MaxPool2d(2),  # 7x7
            *_conv(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(128, FEATURES), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


def asset(name: str) -> Path:
    return Path(str(resources.files("mnistdiff.evaluation") / "assets" / name))


def load_classifier(dataset: str = "mnist", folder: str | Path | None = None) -> tuple[Classifier, dict]:
    """The classifier for `dataset` (eval mode) and its record (accuracy, command, data checksum): the
    shipped one, or the one `mnistdiff train-classifier --out FOLDER` wrote."""
    name = f"classifier-{dataset}.safetensors"
    weights = asset(name) if folder is None else Path(folder) / name
    if not weights.is_file():
        where = f"shipped classifier for {dataset!r} ({weights.name})" if folder is None else f"classifier at {weights}"
        raise FileNotFoundError(f"no {where}: run mnistdiff train-classifier")
    files.verify_checksums(weights.parent, [weights.name, f"classifier-{dataset}.json"])
    model = Classifier()
    model.load_state_dict(load_file(weights))
    record = json.loads((weights.parent / f"classifier-{dataset}.json").read_text())
    return model.eval().requires_grad_(False), record
