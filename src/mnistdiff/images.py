"""Saving images: grids as PNG, figures, batches as .npz; each file whole or not at all."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mnistdiff.files import atomic_file


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 (N, C, H, W) -> one uint8 (rows*H, cols*W) or (.., 3) picture, padded with black."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    out = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8)
    for i, img in enumerate(images.cpu().numpy()):
        r, col = divmod(i, nrow)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = img.transpose(1, 2, 0)
    return out[..., 0] if c == 1 else out


def save_png(path: str | Path, picture: np.ndarray, scale: int = 2) -> None:
    """Write a uint8 picture, enlarged `scale` times with nearest neighbours, atomically."""
    img = Image.fromarray(picture)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    _atomic(Path(path), lambda f: img.save(f, format="PNG"))


def save_figure(fig, path: str | Path, **options) -> None:
    """Write a matplotlib figure in the format its suffix names (savefig's `options`), atomically."""
    path = Path(path)
    _atomic(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".").lower() or None, **options))


def save_npz(path: str | Path, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    """Write uint8 images (N, C, H, W) under the key `images`, and their int64 class labels (N,) under
    `labels` when given, atomically."""
    arrays = {"images": images.cpu().numpy()}
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy().astype(np.int64)
    _atomic(Path(path), lambda f: np.savez_compressed(f, **arrays))


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        write(f)


DIGITS = (1, 28, 28)  # what the shipped classifier reads: FID, class shares, the merge study


def image_shape(config: dict) -> tuple[int, int, int]:
    """(C, H, W) of the images a loaded model makes, from its config (ours or a diffusers model's)."""
    unet = config.get("unet", {})
    side = unet.get("image_size", DIGITS[1])
    return unet.get("in_channels", DIGITS[0]), side, side


def require_digits(config: dict, what: str) -> None:
    """ValueError unless the model makes 1x28x28 images, which the shipped MNIST classifier reads."""
    shape = image_shape(config)
    if shape != DIGITS:
        raise ValueError(f"{what} reads 1x28x28 digits with the shipped MNIST classifier; this model makes "
                         f"{'x'.join(map(str, shape))} images")
