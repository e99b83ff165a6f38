"""Images named on the command line: test-set indices or PNG files."""

from __future__ import annotations

import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from mnistdiff import data


MAX_SIDE = 4096  # larger pictures are refused before decoding (a small file can claim a huge size)
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16")  # what converts to 8-bit grey sensibly


def load_png(path: str | Path) -> torch.Tensor:
    """A PNG as uint8 (1, 28, 28), white digit on black: larger images are resized and dark-on-light
    ones inverted, each with a note on stderr."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        img = Image.open(path)
        width, height = img.size
        if max(width, height) > MAX_SIDE:
            raise ValueError(f"{path}: {width}x{height} pixels is too large (at most {MAX_SIDE} a side)")
        if img.mode not in MODES:
            raise ValueError(f"{path}: image mode {img.mode} is not supported: save it as grey or RGB")
        img = img.convert("L")
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path}: too large ({err})") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err
    if img.size != (28, 28):
        print(f"note: {path.name} is {img.size[0]}x{img.size[1]}, resized to 28x28", file=sys.stderr)
        img = img.resize((28, 28), Image.LANCZOS)
    pixels = np.asarray(img, dtype=np.uint8)
    if pixels.mean() > 127:
        print(f"note: {path.name} is dark on light, inverted to MNIST's light on dark", file=sys.stderr)
        pixels = 255 - pixels
    return torch.from_numpy(pixels.copy()).unsqueeze(0)


def load_array(path: str | Path, key: str, shape: tuple[int | None, ...], kind,
               optional: bool = False) -> np.ndarray | None:
    """The array under `key` of an .npz, checked: `shape` with None for any size, dtype a `kind`
    (np.uint8, np.floating, np.integer); a clear error naming the file otherwise, or None for a
    missing key when `optional`. Nothing is unpickled."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
        names = archive.files
        array = archive[key] if key in names else None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, AttributeError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    if array is None:
        if optional:
            return None
        raise ValueError(f"{path}: no array {key!r} (it holds {', '.join(names) or 'nothing'})")
    fits = array.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, array.shape))
    if not fits or not np.issubdtype(array.dtype, kind) or 0 in array.shape:
        wanted = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        dtype = {np.floating: "float", np.integer: "integer"}.get(kind) or np.dtype(kind).name
        raise ValueError(f"{path}: {key!r} is {array.dtype} of shape {tuple(array.shape)}, expected "
                         f"{dtype} {key} of shape {wanted}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f"{path}: {key!r} holds NaN or inf")
    return array


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


def input_classes(specs: list[str], dataset: str = "mnist", data_dir=None) -> list[int | None]:
    """The class of each spec that is a test-set index, None for a PNG file (its class is unknown)."""
    if not any(spec.isdigit() for spec in specs):
        return [None] * len(specs)
    labels = data.load(dataset, "test", data_dir)[1]
    return [int(labels[int(spec)]) if spec.isdigit() and int(spec) < len(labels) else None for spec in specs]


def fit(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W) digits made into uint8 (N, *shape) for a model of another shape: resized
    (antialiased), grey repeated over colour channels or colours averaged to grey."""
    channels, height, width = shape
    if tuple(images.shape[1:]) == tuple(shape):
        return images
    x = images.float()
    if x.shape[2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    if x.shape[1] != channels:
        if x.shape[1] != 1 and channels != 1:
            raise ValueError(f"cannot make {x.shape[1]}-channel images into {channels}-channel ones")
        x = x.mean(1, keepdim=True).expand(-1, channels, -1, -1)
    return x.round().clamp(0, 255).to(torch.uint8)
