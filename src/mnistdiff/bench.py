"""Speed on this machine: training and denoiser images per second, and DDPM against DDIM sampling time."""

from __future__ import annotations

import statistics
import time

import torch

from mnistdiff.diffusion import Schedule, eps_loss, linear_schedule
from mnistdiff.samplers import ddim_sample, ddpm_sample, timesteps
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


def bench_sampling(model, schedule: Schedule, *, ddim_steps: int = 50, batch_size: int = 64, seed: int = 0) -> dict:
    """Seconds for one batch with DDPM over all T steps and with DDIM over `ddim_steps`, and their ratio."""
    x_T = torch.randn((batch_size, model.config.in_channels, model.config.image_size, model.config.image_size),
                      generator=torch.Generator().manual_seed(seed))
    ddim_sample(model, x_T, schedule, timesteps(2, schedule.T))  # warm-up
    t0 = time.perf_counter()
    ddim_sample(model, x_T, schedule, timesteps(ddim_steps, schedule.T), clip_x0=True)
    ddim_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ddpm_sample(model, x_T, schedule, clip_x0=True, generator=torch.Generator().manual_seed(seed), progress=True)
    ddpm_s = time.perf_counter() - t0
    return {"batch_size": batch_size, "threads": torch.get_num_threads(), "ddpm_steps": schedule.T,
            "ddpm_s": ddpm_s, "ddim_steps": ddim_steps, "ddim_s": ddim_s, "ratio": ddpm_s / ddim_s}
