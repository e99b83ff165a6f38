import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from idx_support import write_idx  # noqa: E402


def make_idx_folder(folder: Path, n: int = 64, seed: int = 0) -> Path:
    """A tiny MNIST-shaped data set: blurry squares at random places, in IDX gzip files."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    for img in images:
        r, c = rng.integers(4, 18, size=2)
        img[r : r + 8, c : c + 8] = 255
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    return make_idx_folder(tmp_path / "data")


@pytest.fixture
def mnist_fixture() -> tuple[Path, Path]:
    """The first images of the real MNIST test set: shipped in tests/data as a small IDX fixture."""
    folder = Path(__file__).parent / "data"
    return folder / "mnist-test-500-images-idx3-ubyte.gz", folder / "mnist-test-500-labels-idx1-ubyte.gz"
