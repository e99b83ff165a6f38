"""Drawing images from a trained model with any sampler, in batches."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from mnistdiff.data import to_uint8
from mnistdiff.diffusion import Schedule
from mnistdiff.precision import autocast
from mnistdiff.samplers import ddim_sample, ddpm_sample, dpm_solver_sample, dpm_solver_timesteps, timesteps

SAMPLERS = ("ddpm", "ddim", "dpm-solver")


def generate(
    model,
    schedule: Schedule,
    n: int,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    spacing: str | None = None,
    t_end: int | None = None,
    clip_x0: bool = True,
    seed: int = 0,
    batch_size: int = 64,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    precision: str = "fp32",
    compile: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """n images as uint8 (n, C, H, W); batch k starts from noise seeded with seed + k,
    so the same seed and batch size give the same images.

    `steps` counts model evaluations for "ddim" and "dpm-solver" ("ddpm" runs all T); `spacing`
    is "uniform" by default, or "quadratic" (both samplers) or "logsnr" (DPM-Solver++).
    `t_end` is the last level the model is evaluated at before the samplers jump to clean data
    (the x0 predicted there); by default DDIM's grid ends at 0 and DPM-Solver++ follows Lu et al.,
    stepping down to t = 0 without that jump.
    precision "bf16" runs the model under bf16 autocast; the sampler's arithmetic stays fp32.
    `compile` runs the model through torch.compile (built once, on the first batch); every batch
    then has the full batch size, the extra images of the last one dropped, so that one graph
    serves all (for DDPM and eta > 0 that last batch's images differ from an uncompiled run's).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if n < 1 or batch_size < 1:
        raise ValueError("n and batch size must be at least 1")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if sampler == "ddim":
        seq = timesteps(steps, schedule.T, spacing or "uniform", t_end or 0)
    elif sampler == "dpm-solver":
        seq = dpm_solver_timesteps(steps, schedule, spacing or "uniform", t_end)
    device = next(model.parameters()).device
    if compile:
        model = torch.compile(model, dynamic=False)
    out = []
    batches = tqdm(range(0, n, batch_size), desc=f"{n} images", disable=not progress or n <= batch_size)
    for k, start in enumerate(batches):
        g = torch.Generator(device=device).manual_seed(seed + k)
        size = batch_size if compile else min(batch_size, n - start)
        x_T = torch.randn((size, *image_shape), generator=g, device=device)
        with autocast(precision, device.type):
            if sampler == "ddpm":
                x0 = ddpm_sample(model, x_T, schedule, clip_x0=clip_x0, generator=g, progress=progress)
            elif sampler == "dpm-solver":
                x0 = dpm_solver_sample(model, x_T, schedule, seq, clip_x0=clip_x0, progress=progress)
            else:
                x0 = ddim_sample(model, x_T, schedule, seq, eta=eta, clip_x0=clip_x0, generator=g,
                                 progress=progress)
        out.append(to_uint8(x0[: n - start]).cpu())
    return torch.cat(out)
