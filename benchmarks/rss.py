"""Peak resident memory of one job, run alone in this process: `python benchmarks/rss.py train|sample PRESET`.

train: 20 optimizer steps through mnistdiff.training on the MNIST training set (held once, as uint8),
       or on random uint8 images of the same size when no data is found;
sample: one batch of 64 with DDIM (5 steps: memory does not grow with steps).
Prints one JSON line with the peak RSS in MiB.
"""

from __future__ import annotations

import json
import sys
import tempfile
from unittest import mock

import torch

from mnistdiff import data, keep_freed_memory
from mnistdiff.diffusion import linear_schedule
from mnistdiff.generation import generate
from mnistdiff.model import UNet, get_preset
from mnistdiff.training import train


def peak_mib() -> float:
    """VmHWM: this process image's peak RSS (ru_maxrss would carry the parent's over fork and exec)."""
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


def main(job: str, preset: str, data_dir: str | None) -> dict:
    keep_freed_memory()  # as the CLI does: freed blocks stay in the process
    source = "MNIST"
    if job == "train":
        try:
            loaded = data.load("mnist", "train", data_dir)
        except Exception:
            source = "random uint8, MNIST's size"
            loaded = (torch.randint(0, 256, (60_000, 1, 28, 28), dtype=torch.uint8),
                      torch.zeros(60_000, dtype=torch.long))
        # train() is handed this one copy, so the data is read (and held) once.
        with mock.patch.object(data, "load", return_value=loaded), tempfile.TemporaryDirectory() as out:
            train(out, preset=preset, data_dir=data_dir, steps=20, checkpoint_every=10**9, grid_images=1,
                  grid_steps=1, progress=False)
    else:
        model = UNet(get_preset(preset).unet).eval()
        generate(model, linear_schedule(), 64, steps=5, batch_size=64)
        source = "-"
    return {"job": job, "preset": preset, "data": source, "peak_rss_mib": peak_mib()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)))
