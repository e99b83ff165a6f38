"""The standard Inception FID, through pytorch-fid, for comparison with published numbers.

Offline by design: the weights must already be on disk (a path, or torch.hub's cache where
pytorch-fid keeps them); nothing is downloaded here. pytorch-fid brings torchvision, which this
project does not depend on, so both are the user's to install: `pip install pytorch-fid`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_NAME}"


class InceptionUnavailable(RuntimeError):
    """pytorch-fid or its Inception weights are missing; the message says what to do."""


def find_weights(path: str | Path | None = None) -> Path:
    """The Inception FID weights: `path`, else torch.hub's cache; an error naming both if neither has them."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME
    found = Path(path) if path else cached
    if not found.is_file():
        raise InceptionUnavailable(
            f"no Inception FID weights at {found}: download {WEIGHTS_URL} to {cached} or pass "
            "--inception-weights PATH (nothing is downloaded at run time)")
    return found


def load_inception(weights: Path, device: str | torch.device = "cpu"):
    """pytorch-fid's InceptionV3 (pool3, 2048 features), built from the weights file at `weights`."""
    try:
        from pytorch_fid.inception import InceptionV3
    except ImportError as err:
        raise InceptionUnavailable(f"the Inception FID needs pytorch-fid (pip install pytorch-fid): {err}") from err
    # pytorch-fid looks for its weights in torch.hub's cache: show it this file there, so it never downloads.
    old = torch.hub.get_dir()
    with tempfile.TemporaryDirectory() as hub:
        (Path(hub) / "checkpoints").mkdir()
        os.symlink(weights.resolve(), Path(hub) / "checkpoints" / WEIGHTS_NAME)
        torch.hub.set_dir(hub)
        try:
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        finally:
            torch.hub.set_dir(old)
    return net.eval().to(device)


@torch.no_grad()
def inception_stats(net, images: torch.Tensor, batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of pool3 features of uint8 grey images (N, 1, H, W), repeated to RGB."""
    device = next(net.parameters()).device
    feats = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div(255).expand(-1, 3, -1, -1)
        feats.append(net(x)[0].flatten(1).double().cpu())  # pytorch-fid resizes to 299 x 299 itself
    f = torch.cat(feats).numpy()
    return f.mean(0), np.cov(f, rowvar=False)


def inception_fid(net, images: torch.Tensor, real: torch.Tensor) -> float:
    """Inception FID of generated uint8 images against real uint8 images (e.g. the test set);
    `net` from load_inception."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    return float(calculate_frechet_distance(*inception_stats(net, images), *inception_stats(net, real)))
