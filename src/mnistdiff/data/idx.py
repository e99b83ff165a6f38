"""Reading the IDX format of MNIST and Fashion-MNIST (gzip or raw)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

# Third byte of the magic number: 0x08 = unsigned byte; fourth: number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


class DataFileError(ValueError):
    """A data file that is missing, malformed or truncated."""


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataFileError(f"{path}: cannot read ({err})") from err


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Return the uint8 array stored in an IDX file, checking its header and size."""
    raw = _read_bytes(path)
    if len(raw) < 8:
        raise DataFileError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataFileError(f"{path}: magic number {found:#010x}, expected {magic:#010x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path}: truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape)  # Python ints: no overflow on a forged header
    if len(raw) != expected:
        raise DataFileError(f"{path}: {len(raw)} bytes, header {shape} needs {expected} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of one split, both uint8, checked against each other."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise DataFileError(f"{images_path}: images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise DataFileError(f"{images_path}: {len(images)} images but {labels_path.name} has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{labels_path}: label {labels.max()} is outside 0..9")
    return images, labels
