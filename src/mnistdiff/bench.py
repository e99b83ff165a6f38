"""Throughput of a preset on this machine: training and denoiser images per second."""

from __future__ import annotations

import statistics
import time

import torch

from mnistdiff.diffusion import linear_schedule
from mnistdiff.diffusion import eps_loss
from mnistdiff.model import UNet, get_preset
from mnistdiff.train.loop import autocast


def _median_seconds(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_preset(preset: str, *, batch_size: int = 64, precision: str = "bf16", repeats: int = 10, warmup: int = 3) -> dict:
    """Median images/s of one training step and one denoiser call, on random data."""
    model = UNet(get_preset(preset).unet)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = linear_schedule()
    x0 = torch.randn(batch_size, 1, 28, 28)
    t = torch.randint(0, schedule.T, (batch_size,))

    def train_step():
        with autocast(precision):
            loss = eps_loss(model, schedule, x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def denoise():
        with torch.inference_mode(), autocast(precision):
            model(x0, t)

    train_s = _median_seconds(train_step, repeats, warmup)
    model.eval()
    denoise_s = _median_seconds(denoise, repeats, warmup)
    return {
        "preset": preset,
        "params": sum(p.numel() for p in model.parameters()),
        "batch_size": batch_size,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "train_images_per_s": batch_size / train_s,
        "denoiser_images_per_s": batch_size / denoise_s,
    }
