"""Images named on the command line: test-set indices or PNG files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mnistdiff import data


def load_png(path: str | Path) -> torch.Tensor:
    """A PNG as uint8 (1, 28, 28), white digit on black: larger images are resized and dark-on-light
    ones inverted, each with a note on stderr."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    img = Image.open(path).convert("L")
    if img.size != (28, 28):
        print(f"note: {path.name} is {img.size[0]}x{img.size[1]}, resized to 28x28", file=sys.stderr)
        img = img.resize((28, 28), Image.LANCZOS)
    pixels = np.asarray(img, dtype=np.uint8)
    if pixels.mean() > 127:
        print(f"note: {path.name} is dark on light, inverted to MNIST's light on dark", file=sys.stderr)
        pixels = 255 - pixels
    return torch.from_numpy(pixels.copy()).unsqueeze(0)


def load_inputs(specs: list[str], dataset: str = "mnist", data_dir=None) -> tuple[torch.Tensor, list[str]]:
    """uint8 (N, 1, 28, 28) for specs that are test-set indices ("17") or PNG paths, and a label for each."""
    test = None
    images, labels = [], []
    for spec in specs:
        if spec.isdigit():
            if test is None:
                test = data.load(dataset, "test", data_dir)
            index = int(spec)
            if index >= len(test[0]):
                raise ValueError(f"test index {index} is out of range (the test set has {len(test[0])} images)")
            images.append(test[0][index])
            labels.append(f"test #{index} ({int(test[1][index])})")
        else:
            images.append(load_png(spec))
            labels.append(Path(spec).name)
    return torch.stack(images), labels
