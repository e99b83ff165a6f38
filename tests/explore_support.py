"""Shared by the explorer's tests: a tiny explorer, a tiny checkpoint on disk, a live server."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from mnistdiff.data.idx import read_split
from mnistdiff.diffusion import ScheduleConfig, make_schedule
from mnistdiff.evaluation import load_classifier
from mnistdiff.explore import Explorer
from mnistdiff.model import PRESETS, UNet
from mnistdiff.training import checkpoint

DATA = Path(__file__).parent / "data"


def fixture_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 500 images of the MNIST test set, from tests/data."""
    images, labels = read_split(DATA / "mnist-test-500-images-idx3-ubyte.gz",
                                DATA / "mnist-test-500-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype("int64"))


def tiny_model() -> UNet:
    torch.manual_seed(0)
    return UNet(PRESETS["tiny"].unet).eval().requires_grad_(False)


def tiny_explorer(digits: bool = True) -> Explorer:
    return Explorer(tiny_model(), make_schedule(ScheduleConfig()), load_classifier("mnist")[0],
                    fixture_digits() if digits else None, name="a tiny untrained model")


def tiny_conditional_explorer() -> Explorer:
    """The explorer over tests/data/tiny-cond-checkpoint: a tiny class-conditional model, 10 labels."""
    from mnistdiff import load_checkpoint

    model, schedule, _ = load_checkpoint(DATA / "tiny-cond-checkpoint")
    return Explorer(model, schedule, load_classifier("mnist")[0], fixture_digits(), name="a tiny conditional model")


def tiny_checkpoint(folder: Path) -> Path:
    """An exported-style checkpoint (EMA weights and config) of an untrained tiny UNet."""
    preset = PRESETS["tiny"]
    folder.mkdir(parents=True)
    weights = {f"ema.{k}": v.contiguous() for k, v in tiny_model().state_dict().items()}
    save_file(weights, folder / "weights.safetensors")
    config = checkpoint.config_dict("tiny", "mnist", preset.unet, preset.train, ScheduleConfig())
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def folder_with_test_set(folder: Path) -> Path:
    """The 500-image fixture under the test set's usual file names."""
    folder.mkdir(parents=True)
    shutil.copy(DATA / "mnist-test-500-images-idx3-ubyte.gz", folder / "t10k-images-idx3-ubyte.gz")
    shutil.copy(DATA / "mnist-test-500-labels-idx1-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(explorer: Explorer, **timeouts):
    """The app served as `explore` serves it (make_server: its `timeouts`) in a thread on a free port;
    yields its base URL and the thread."""
    from mnistdiff.explore.server import make_server

    port = free_port()
    server = make_server(explorer, "127.0.0.1", port, **timeouts)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the explorer's server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", thread
    finally:
        server.should_exit = True
        thread.join(timeout=30)
