import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from mnistdiff.data.idx import write_idx  # noqa: E402


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


@pytest.fixture(autouse=True)
def _keep_threads_and_allocator(monkeypatch):
    """cli.main fits torch's threads to the machine's load and tells glibc to keep freed memory, both
    process-wide: restore the thread count after each test, and leave the allocator as it is (glibc
    cannot say what its settings were, so they are not changed at all in process)."""
    import mnistdiff.cli

    get_threads, set_threads = torch.get_num_threads, torch.set_num_threads  # as a test may patch them
    threads = get_threads()
    monkeypatch.setattr(mnistdiff.cli, "keep_freed_memory", lambda: False)
    yield
    if get_threads() != threads:
        set_threads(threads)


class StepClock:
    """A clock for the training loop's time budget that moves only as the test says: `step_s` seconds
    at every training step, and whatever the test adds to `now` itself."""

    def __init__(self, step_s: float = 1.0):
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def step_clock(monkeypatch) -> StepClock:
    """A StepClock whose time each training step (loop.Run.step) advances; pass it as train(clock=...)."""
    from mnistdiff.training import loop

    clock, step = StepClock(), loop.Run.step

    def timed_step(run, *args, **kwargs):
        result = step(run, *args, **kwargs)
        clock.now += clock.step_s
        return result

    monkeypatch.setattr(loop.Run, "step", timed_step)
    return clock
