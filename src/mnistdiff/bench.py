"""Speed on this machine: the matmul peak, FLOPs per image, training and denoiser images per second,
and DDPM against DDIM sampling time. benchmarks/run.py puts these together into one report."""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mnistdiff.diffusion import EpsLoss, Schedule, linear_schedule
from mnistdiff.model import UNet, get_preset
from mnistdiff.precision import autocast, pick_precision
from mnistdiff.runtime import adamw, compile_model, prepare
from mnistdiff.samplers import levels, sample_ddim, sample_ddpm


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, repeats: int, warmup: int, device: torch.device = torch.device("cpu")) -> float:
    """The median wall time of fn() over `repeats` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(precision: str, device: torch.device = torch.device("cpu"), n: int = 2048, repeats: int = 10) -> float:
    """The machine's practical peak: GFLOP/s of an n x n matmul in fp32 or bf16."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats, 3, device) / 1e9


def shipped_model_and_batch(layout: str = "plain", batch_size: int = 64) -> tuple:
    """(model, xt, t): the shipped model and a random batch for its denoiser, both in `layout`
    ("plain" or "channels-last"); what the timing scripts in benchmarks/ start from."""
    from mnistdiff import load_checkpoint

    fmt = torch.channels_last if layout == "channels-last" else torch.contiguous_format
    model, schedule, _ = load_checkpoint()
    xt = torch.randn(batch_size, 1, 28, 28).contiguous(memory_format=fmt)
    return model.to(memory_format=fmt), xt, torch.randint(0, schedule.T, (batch_size,))


def gflops_per_image(model, image_shape=(1, 28, 28)) -> float:
    """Forward GFLOP for one image (a multiply-add counts 2), by torch's FLOP counter; a training step is ~3x.

    Counted on a plain-layout copy: in channels-last, CPU attention takes a fused kernel that the
    counter does not count.
    """
    device = next(model.parameters()).device
    x, t = torch.zeros(1, *image_shape, device=device), torch.zeros(1, dtype=torch.long, device=device)
    plain = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        plain(x, t)
    return counter.get_total_flops() / 1e9


def model_speed(model, *, batch_size: int = 64, precision: str = "bf16", channels_last: bool = False,
                repeats: int = 10, warmup: int = 3, image_shape=(1, 28, 28)) -> dict:
    """Median images/s of one training step (AdamW) and of one denoiser call, on random data.

    `model(xt, t) -> eps` may be any noise predictor: the same harness times other libraries' UNets.
    """
    device = next(model.parameters()).device
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = adamw(model.parameters(), device, lr=1e-4)  # the update training runs
    schedule = linear_schedule()
    x0 = torch.randn(batch_size, *image_shape, device=device).contiguous(memory_format=memory_format)
    t = torch.randint(0, schedule.T, (batch_size,), device=device)

    def train_step():
        with autocast(precision, device.type):
            loss = EpsLoss()(model, schedule, x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def denoise():
        with torch.inference_mode(), autocast(precision, device.type):
            model(x0, t)

    model.train()
    train_s = median_seconds(train_step, repeats, warmup, device)
    model.eval()
    denoise_s = median_seconds(denoise, repeats, warmup, device)
    model.to(memory_format=torch.contiguous_format)
    return {"train_images_per_s": batch_size / train_s, "denoiser_images_per_s": batch_size / denoise_s}


def bench_preset(preset: str, *, batch_size: int = 64, precision: str = "auto", repeats: int = 10, warmup: int = 3,
                 device: str = "cpu", compile: bool = False) -> dict:
    """Speed of a preset's UNet (random weights: timing does not depend on them)."""
    precision = pick_precision(precision, torch.device(device).type)
    model = UNet(get_preset(preset).unet).to(device)
    timed = compile_model(model) if compile else model  # built during the warm-up steps
    speed = model_speed(timed, batch_size=batch_size, precision=precision, repeats=repeats, warmup=warmup)
    return {
        "preset": preset,
        "params": sum(p.numel() for p in model.parameters()),
        "gflop_per_image": gflops_per_image(model),
        "batch_size": batch_size,
        "precision": precision,
        "compile": compile,
        "threads": torch.get_num_threads(),
        "device": str(device),
        **speed,
    }


def bench_sampling(model, schedule: Schedule, *, ddim_steps: int = 50, batch_size: int = 64, seed: int = 0,
                   precision: str = "fp32", ddim_repeats: int = 4, compile: bool = False) -> dict:
    """Seconds for one batch with DDPM over all T steps and with DDIM over `ddim_steps`, and their ratio.

    DDIM runs once to warm up (which also builds the torch.compile graph with `compile`), then
    `ddim_repeats` times, half before DDPM's one run and half after, and its time is the median:
    the machine's speed drifts over DDPM's minute, and timing DDIM on both sides of it keeps that
    drift out of the ratio.
    """
    device = next(model.parameters()).device
    config = model.config
    precision = pick_precision(precision, device.type)
    model = prepare(model, precision=precision, compile=compile)
    x_T = torch.randn((batch_size, config.in_channels, config.image_size, config.image_size),
                      generator=torch.Generator().manual_seed(seed)).to(device)

    def ddim() -> float:
        t0 = time.perf_counter()
        sample_ddim(model, x_T, schedule, levels(ddim_steps, schedule), clip_x0=True)
        _sync(device)
        return time.perf_counter() - t0

    ddim()  # warm-up
    ddim_runs = [ddim() for _ in range(ddim_repeats // 2)]
    t0 = time.perf_counter()
    sample_ddpm(model, x_T, schedule, levels(schedule.T, schedule), clip_x0=True,
                generator=torch.Generator(device).manual_seed(seed), progress=True)
    _sync(device)
    ddpm_s = time.perf_counter() - t0
    ddim_runs += [ddim() for _ in range(ddim_repeats - ddim_repeats // 2)]
    ddim_s = statistics.median(ddim_runs)
    return {"batch_size": batch_size, "precision": precision, "compile": compile, "threads": torch.get_num_threads(),
            "device": str(device),
            "ddpm_steps": schedule.T, "ddpm_s": ddpm_s, "ddim_steps": ddim_steps, "ddim_s": ddim_s,
            "ddim_runs_s": ddim_runs, "ratio": ddpm_s / ddim_s}


def bench_student(students: dict, teacher, schedule: Schedule, *, teacher_steps: int = 50, batch_size: int = 64,
                  seed: int = 0, precision: str = "fp32", repeats: int = 4, compile: bool = False) -> dict:
    """Seconds for one batch from distilled students, {calls: student} (one student at several counts, or
    a student for each), each in its own sampler as generate() picks it, beside the teacher's DDIM over
    `teacher_steps`, from the same noise.

    Each is warmed up once (building the torch.compile graph with `compile`), then timed `repeats`
    times in turns (teacher, then every student count, and again), and its time is the median: turns
    keep the machine's drift out of the ratios.
    """
    from mnistdiff.generation import student_sampler

    device = next(teacher.parameters()).device
    precision = pick_precision(precision, device.type)
    config = next(iter(students.values())).config
    x_T = torch.randn((batch_size, config.in_channels, config.image_size, config.image_size),
                      generator=torch.Generator().manual_seed(seed)).to(device)
    runs = {"teacher": lambda m=prepare(teacher, precision=precision, compile=compile):
            sample_ddim(m, x_T, schedule, levels(teacher_steps, schedule), clip_x0=True)}
    prepared = {id(m): prepare(m, precision=precision, compile=compile) for m in students.values()}
    for n, student in sorted(students.items()):
        fn, grid = student_sampler(student, n, schedule)
        runs[n] = lambda fn=fn, grid=grid, fast=prepared[id(student)]: fn(
            fast, x_T, schedule, grid, clip_x0=True, generator=torch.Generator(device).manual_seed(seed))
    times = {key: [] for key in runs}
    for k in range(repeats + 1):
        for key, run in runs.items():
            t0 = time.perf_counter()
            run()
            _sync(device)
            if k:  # the first turn warms up
                times[key].append(time.perf_counter() - t0)
    teacher_s = statistics.median(times["teacher"])
    return {"batch_size": batch_size, "precision": precision, "compile": compile, "threads": torch.get_num_threads(),
            "device": str(device), "teacher_steps": teacher_steps, "teacher_s": teacher_s,
            "student_s": {n: statistics.median(times[n]) for n in sorted(students)}, "runs_s": {str(k): v for k, v in times.items()}}
