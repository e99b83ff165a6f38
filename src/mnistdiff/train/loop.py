"""The training loop: eps-prediction MSE, AdamW with warm-up, EMA, checkpoints that survive kills."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mnistdiff import data
from mnistdiff.diffusion import ScheduleConfig, eps_loss, make_schedule
from mnistdiff.evaluation.report import fid_test
from mnistdiff.generate import generate
from mnistdiff.images import grid, save_png
from mnistdiff.model import UNet, get_preset
from mnistdiff.precision import autocast, pick_device
from mnistdiff.train import checkpoint
from mnistdiff.train.compiled import compile_for_training
from mnistdiff.train.ema import EMA
from mnistdiff.train.log import FID_FIELDS, TRAIN_FIELDS, CsvLog


class Interrupted(Exception):
    """Training stopped by a signal after saving a checkpoint."""


class Run:
    """Everything a training run holds: model, EMA, optimizer, RNG and data order, in folder `out`."""

    def __init__(self, out: Path, config: dict, images: torch.Tensor, device: torch.device,
                 compile: bool = False):
        self.out, self.config, self.images = out, config, images  # images: (N, C, H, W) uint8, on the CPU
        self.device = device
        unet_cfg, self.cfg, sched_cfg = checkpoint.parse_config(config)
        torch.manual_seed(self.cfg.seed)  # the weights' initialisation, and dropout
        self.model = UNet(unet_cfg).to(device)
        self.ema = EMA(self.model, self.cfg.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.schedule = make_schedule(sched_cfg)
        # The training forward may run through torch.compile; weights and state_dict stay the model's.
        self.compiled = self.model
        if compile:
            x0 = data.to_model_range(images[: self.cfg.batch_size]).to(device)
            self.compiled, message = compile_for_training(self.model, self.schedule, x0, self.cfg.precision)
            print(message, flush=True)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)  # data order, t and eps, on the CPU
        self.state = {"step": 0, "elapsed_s": 0.0, "pos": 0,
                      "perm": torch.randperm(len(images), generator=self.gen)}

    def restore(self) -> None:
        folder = checkpoint.find(self.out)
        _, weights = checkpoint.read(folder)
        self.model.load_state_dict(weights["model"])
        self.ema.shadow.load_state_dict(weights["ema"])
        saved = torch.load(folder / "state.pt", weights_only=False, map_location="cpu")
        self.optimizer.load_state_dict(saved["optimizer"])
        rng = saved["rng"]
        torch.set_rng_state(rng.pop("torch"))
        cuda_rng = rng.pop("cuda", None)  # dropout on a GPU draws from the device's generator
        if cuda_rng is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(cuda_rng, self.device)
        self.gen.set_state(rng.pop("gen"))
        self.state = rng | {"step": saved["step"]}

    def save(self) -> Path:
        rng = {"torch": torch.get_rng_state(), "gen": self.gen.get_state()} | {
            k: v for k, v in self.state.items() if k != "step"}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return checkpoint.save(self.out, self.state["step"], self.model, self.ema, self.optimizer, rng, self.config)

    def sample_grid(self) -> None:
        pics = generate(self.ema.shadow, self.schedule, self.cfg.grid_images, sampler="ddim",
                        steps=self.cfg.grid_steps, clip_x0=True, seed=self.cfg.seed,
                        image_shape=tuple(self.images.shape[1:]))
        save_png(self.out / "samples" / f"step_{self.state['step']:07d}.png", grid(pics))

    def fid_check(self) -> dict:
        """FID of fresh DDIM samples of the EMA model against the test statistics."""
        pics = generate(self.ema.shadow, self.schedule, self.cfg.fid_images, sampler="ddim",
                        steps=self.cfg.fid_steps, clip_x0=True, seed=self.cfg.seed + 1,
                        image_shape=tuple(self.images.shape[1:]))
        return {"step": self.state["step"], "elapsed_s": self.state["elapsed_s"], "images": self.cfg.fid_images,
                "ddim_steps": self.cfg.fid_steps, "fid_test": fid_test(pics, self.config["dataset"])}

    def next_batch(self) -> torch.Tensor:
        """The next batch of a shuffled pass over the data, in [-1, 1]; a new permutation each epoch."""
        b, s = self.cfg.batch_size, self.state
        if s["pos"] + b > len(self.images):
            s["perm"], s["pos"] = torch.randperm(len(self.images), generator=self.gen), 0
        idx = s["perm"][s["pos"] : s["pos"] + b]
        s["pos"] += b
        return data.to_model_range(self.images[idx]).to(self.device, non_blocking=True)

    def init_from(self, source: Path) -> None:
        """Start from another checkpoint's EMA weights (model and EMA alike), with a fresh optimizer."""
        _, weights = checkpoint.read(source)
        self.model.load_state_dict(weights["ema"])
        self.ema.shadow.load_state_dict(weights["ema"])

    def step(self, time_done: float | None = None) -> tuple[float, float]:
        """One optimizer step; returns (loss, lr). `time_done`: the share of a time budget spent."""
        lr = learning_rate(self.cfg, self.state["step"], time_done)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x0 = self.next_batch()
        with autocast(self.cfg.precision, self.device.type):
            loss = eps_loss(self.compiled, self.schedule, x0, generator=self.gen,
                            min_snr_gamma=self.cfg.min_snr_gamma)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model, self.state["step"])
        self.state["step"] += 1
        return loss.item(), lr


def learning_rate(cfg, step: int, time_done: float | None = None) -> float:
    """Linear warm-up, then constant or a cosine decay to 0 at `cfg.steps`.

    `time_done` (0..1) is the share of a time budget spent: the decay then also ends when the
    budget does, whichever of steps and time comes first, so a run stopped by --minutes anneals.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.lr_decay == "constant":
        return cfg.lr
    if cfg.lr_decay == "cosine":
        done = min(1.0, (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1))
        if time_done is not None:
            done = max(done, min(1.0, time_done))
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * done))
    raise ValueError(f"unknown lr_decay {cfg.lr_decay!r}: use 'constant' or 'cosine'")


def _config(out: Path, preset: str, dataset: str, resume: bool, overrides: dict,
            init_from: Path | None = None) -> dict:
    """The run's full config: the preset's, or on resume the checkpoint's, with `overrides` applied.

    With `init_from` (a checkpoint folder) the model's shape and schedule are that checkpoint's.
    """
    has_checkpoint = (out / "checkpoints" / "latest").is_file()
    if resume and not has_checkpoint:
        raise FileNotFoundError(f"--resume: no checkpoint in {out}")
    if has_checkpoint and not resume:
        raise FileExistsError(f"{out} already holds a run: pass --resume to continue it, or another --out")
    extra = {}
    if resume:
        config, _ = checkpoint.read(checkpoint.find(out))
        unet_cfg, train_cfg, sched_cfg = checkpoint.parse_config(config)
        preset, dataset = config["preset"], config["dataset"]
        extra = {k: config[k] for k in ("init_from",) if k in config}
    else:
        p = get_preset(preset)
        unet_cfg, train_cfg, sched_cfg = p.unet, p.train, ScheduleConfig()
    if init_from is not None:
        source, _ = checkpoint.read(init_from)
        unet_cfg, _, sched_cfg = checkpoint.parse_config(source)
        dataset = source["dataset"]
        extra["init_from"] = {"path": str(init_from), "step": _step_of(init_from),
                              "weights_sha256": checkpoint.sha256(init_from / "weights.safetensors")}
    train_cfg = replace(train_cfg, **{k: v for k, v in overrides.items() if v is not None})
    autocast(train_cfg.precision)  # fail on a bad setting before loading data
    learning_rate(train_cfg, train_cfg.warmup)
    return checkpoint.config_dict(preset, dataset, unet_cfg, train_cfg, sched_cfg) | extra


def _step_of(folder: Path) -> int | None:
    """The step a checkpoint (or exported model) was saved at, where it says."""
    record = folder / "record.json"
    if record.is_file():
        return json.loads(record.read_text()).get("step")
    digits = folder.name.removeprefix("step_")
    return int(digits) if digits.isdigit() else None


def train(
    out: str | Path,
    *,
    preset: str = "small",
    dataset: str = "mnist",
    data_dir: str | Path | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    minutes: float | None = None,
    device: str = "auto",
    compile: bool = False,
    progress: bool = True,
    **overrides,
) -> Path:
    """Train (or, with resume, continue) a run in folder `out`; returns the last checkpoint folder.

    `overrides` replace fields of the preset's TrainConfig (steps, batch_size, lr, precision, ...).
    Training stops after `steps` or `minutes`, whichever comes first; SIGINT or SIGTERM saves a
    checkpoint before stopping. `device` "auto" takes a CUDA GPU when there is one. `compile` runs
    the training forward and backward through torch.compile if a check on the first batch finds its
    gradients equal to the plain model's (train/compiled.py); otherwise training runs uncompiled.
    `init_from` (a run or checkpoint folder, or None for nothing) starts a new run from that
    checkpoint's EMA weights with a fresh optimizer; config.json records where it started.
    With `minutes` and a cosine decay, the learning rate reaches 0 when the time runs out.
    """
    out = Path(out)
    if init_from is not None and resume:
        raise ValueError("--init-from starts a new run; --resume continues one: pass only one")
    source = checkpoint.find(init_from) if init_from is not None else None
    config = _config(out, preset, dataset, resume, overrides, source)
    images, _ = data.load(config["dataset"], "train", data_dir)  # held once, as uint8
    config["unet"] |= {"in_channels": images.shape[1], "image_size": images.shape[-1]}
    run = Run(out, config, images, pick_device(device), compile=compile)
    if resume:
        run.restore()
    elif source is not None:
        run.init_from(source)
    cfg, state = run.cfg, run.state
    log = CsvLog(out / "log.csv", TRAIN_FIELDS, after_step=state["step"])
    fid_log = CsvLog(out / "fid.csv", FID_FIELDS, after_step=state["step"]) if cfg.fid_every else None
    if minutes is not None and minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    start = time.monotonic()
    deadline = start + 60 * minutes if minutes else float("inf")
    # The share of the budget spent, measured from where a resumed decay stood, so the lr stays continuous.
    begun = _decay_done(cfg, state["step"])
    last_saved = state["step"] if resume else -1
    bar = tqdm(total=cfg.steps, initial=state["step"], desc="train", disable=not progress, dynamic_ncols=True)
    since_log = [0, 0.0]  # steps and seconds of training since the last log row
    with _StopOnSignal() as stop:
        while state["step"] < cfg.steps and not stop.signalled and time.monotonic() < deadline:
            t0 = time.perf_counter()
            time_done = begun + (1 - begun) * (time.monotonic() - start) / (60 * minutes) if minutes else None
            loss, lr = run.step(time_done)
            dt = time.perf_counter() - t0
            state["elapsed_s"] += dt
            since_log = [since_log[0] + 1, since_log[1] + dt]
            bar.update(1)
            if state["step"] % cfg.log_every == 0 or state["step"] == 1:
                ips = cfg.batch_size * since_log[0] / since_log[1]
                log.write(step=state["step"], loss=loss, lr=lr, images_per_s=ips, elapsed_s=state["elapsed_s"])
                bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{ips:.0f}", **_time_left(deadline))
                since_log = [0, 0.0]
            if state["step"] % cfg.sample_every == 0:
                run.sample_grid()
            if fid_log and state["step"] % cfg.fid_every == 0:
                fid_log.write(**run.fid_check())
            if state["step"] % cfg.checkpoint_every == 0:
                run.save()
                last_saved = state["step"]
    bar.close()
    if since_log[0]:  # steps since the last row: the log ends at the step the run stopped at
        log.write(step=state["step"], loss=loss, lr=lr, images_per_s=cfg.batch_size * since_log[0] / since_log[1],
                  elapsed_s=state["elapsed_s"])
    final = checkpoint.find(out) if state["step"] == last_saved else run.save()
    if stop.signalled:
        raise Interrupted(f"stopped by signal at step {state['step']}; checkpoint saved in {final}")
    if state["step"] % cfg.sample_every != 0:
        run.sample_grid()
    return final


def _decay_done(cfg, step: int) -> float:
    """How far a cosine decay over `cfg.steps` has gone at `step` (0 during warm-up)."""
    return min(1.0, max(0, step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1))


def _time_left(deadline: float) -> dict:
    """With --minutes the step bar's ETA can be wrong; show the time budget left too."""
    if deadline == float("inf"):
        return {}
    minutes, seconds = divmod(max(0, int(deadline - time.monotonic())), 60)
    return {"time_left": f"{minutes}:{seconds:02d}"}


class _StopOnSignal:
    """Turns SIGINT and SIGTERM into a flag the loop checks, so a kill saves first."""

    def __init__(self):
        self.signalled = False
        self.previous = {}

    def __enter__(self):
        # Handlers can only be set from the main thread; elsewhere, run without them.
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.signalled = True

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
