"""The training loop: eps-prediction MSE, AdamW with warm-up, EMA, checkpoints that survive kills."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mnistdiff import data, files, loading, lock
from mnistdiff.diffusion import level_density, make_schedule, training_loss
from mnistdiff.distill.student import check_same_student, student_config, student_loss
from mnistdiff.evaluation.report import fid_test
from mnistdiff.generation import generate
from mnistdiff.images import grid, save_png
from mnistdiff.model import UNet, precondition
from mnistdiff.model.grow import deepen
from mnistdiff.precision import autocast, pick_precision
from mnistdiff.runtime import adamw
from mnistdiff.samplers.common import distilled_steps
from mnistdiff.training import checkpoint, distributed, sittings
from mnistdiff.training import state as state_io
from mnistdiff.training.budget import Budget
from mnistdiff.training.compiled import compile_for_training
from mnistdiff.training.ema import EMA
from mnistdiff.training.labels import drop_labels
from mnistdiff.training.log import Logs
from mnistdiff.training.lr import learning_rate
from mnistdiff.training.settings import resolve, resume_from
from mnistdiff.training.signals import StopOnSignal


class Interrupted(Exception):
    """Training stopped by a signal after saving a checkpoint."""


class NonFiniteLoss(ArithmeticError):
    """A NaN or inf loss or gradient stopped training; the last good checkpoint is kept."""


class Run:
    """Everything a training run holds: model, EMA, optimizer, RNG and data order, in folder `out`."""

    def __init__(self, out: Path, config: dict, images: torch.Tensor, labels: torch.Tensor, group: distributed.Group,
                 compile: bool = False, clock: Callable[[], float] = time.monotonic):
        self.out, self.config, self.images = out, config, images  # images: (N, C, H, W) uint8, on the CPU
        self.labels = labels.long()  # (N,) int64, on the CPU
        self.clock = clock  # seconds, for the time budget; tests pass a clock of their own
        self.group, self.device = group, group.device
        device = group.device
        # config: the whole dict, as config.json holds it; train_config: its TrainConfig.
        unet_config, self.train_config, schedule_config = loading.parse_config(config)
        settings = self.train_config
        torch.manual_seed(settings.seed)  # the weights' initialisation, and dropout
        self.schedule = make_schedule(schedule_config)
        self.model = UNet(unet_config).to(device)  # the network, whose weights a checkpoint holds
        self.ema = EMA(self.model, settings.ema_decay)
        # What the loss and the samplers call: eps, from the network through its preconditioning, if any.
        self.denoiser = precondition(self.model, self.schedule.alpha_bar).to(device)
        self.ema_denoiser = precondition(self.ema.shadow, self.schedule.alpha_bar).to(device).eval()
        # The fused kernel: the same update in one pass over the weights (about 2% of a CPU training step).
        self.optimizer = adamw(self.model.parameters(), device, lr=settings.lr, weight_decay=settings.weight_decay)
        # How the loss weighs and draws the levels (diffusion.py): the plain MSE over uniform t by default.
        density = level_density(self.schedule, settings.level_density, settings.level_mean, settings.level_std,
                                settings.level_uniform)
        if "student" in config:  # a distillation's loss, which holds the frozen teacher (distill/student.py)
            self.loss = student_loss(config, self)
        else:
            self.loss = training_loss(unet_config.preconditioning, unet_config.sigma_data, settings.min_snr_gamma,
                                      density, stratified=settings.level_draw == "stratified")
        # The training forward may run through torch.compile; weights and state_dict stay the model's.
        self.compiled = self.denoiser
        self.paused_s = 0.0  # wall time of FID checks, which the time budget does not count
        self.setup_s = 0.0  # wall time of compiling, which the time budget counts
        if compile:
            begin = self.clock()
            x0 = data.to_model_range(images[: settings.batch_size]).to(device)
            self.compiled, message = compile_for_training(self.denoiser, self.schedule, x0, settings.precision)
            self.setup_s = self.clock() - begin
            print(f"{message}; {self.setup_s:.0f} s, counted in --minutes", flush=True)
        self.compiled = distributed.wrap(self.compiled, group)
        self._seed_dropout(0)
        self.gen = torch.Generator().manual_seed(settings.seed)  # data order, t and eps, on the CPU
        self.state = {"step": 0, "elapsed_s": 0.0, "pos": 0, "skipped": 0,
                      "perm": torch.randperm(len(images), generator=self.gen)}

    def _seed_dropout(self, step: int) -> None:
        """Processes other than 0 draw their own dropout masks (a checkpoint keeps process 0's RNG)."""
        if self.group.rank > 0:
            torch.manual_seed(hash((self.train_config.seed, self.group.rank, step)) & (2**63 - 1))

    def restore(self, folder: Path) -> None:
        """Continue from checkpoint `folder`: weights, optimizer, RNG and data order."""
        _, weights = loading.read(folder)
        loading.load_weights(self.model, weights["model"], folder / "weights.safetensors")
        loading.load_weights(self.ema.shadow, weights["ema"], folder / "weights.safetensors")
        saved = checkpoint.read_state(folder)
        try:
            self.optimizer.load_state_dict(state_io.optimizer_state(saved["optimizer"], self.optimizer))
            rng = dict(saved["rng"])
            torch.set_rng_state(rng.pop("torch"))
            cuda_rng = rng.pop("cuda", None)  # dropout on a GPU draws from the device's generator
            if cuda_rng is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(cuda_rng, self.device)
            self.gen.set_state(rng.pop("gen"))
            if len(rng["perm"]) != len(self.images):
                raise ValueError(f"its data order covers {len(rng['perm'])} images, the data set has {len(self.images)}")
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise loading.CheckpointError(f"{folder}: training state does not fit this run ({err})") from err
        self.state = {"skipped": 0} | rng | {"step": saved["step"]}
        self._seed_dropout(saved["step"])

    def save(self) -> Path:
        rng = {"torch": torch.get_rng_state(), "gen": self.gen.get_state()} | {
            k: v for k, v in self.state.items() if k != "step"}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return checkpoint.save(self.out, self.state["step"], self.model, self.ema, self.optimizer, rng, self.config)

    def sampler(self) -> str | None:
        """DDIM, so that runs' FID curves compare across versions; a student's own (None)."""
        return None if distilled_steps(self.ema_denoiser) else "ddim"

    def sample_grid(self) -> None:
        pics = generate(self.ema_denoiser, self.schedule, self.train_config.grid_images, sampler=self.sampler(),
                        steps=self.train_config.grid_steps, clip_x0=True, seed=self.train_config.seed,
                        image_shape=tuple(self.images.shape[1:]))
        save_png(self.out / "samples" / f"step_{self.state['step']:07d}.png", grid(pics))

    def fid_check(self) -> dict:
        """FID of fresh DDIM samples of the EMA model (a student's: its own sampler) against the test
        statistics, in the run's precision; its time is not the time budget's (`paused_s`)."""
        settings, t0 = self.train_config, self.clock()
        pics = generate(self.ema_denoiser, self.schedule, settings.fid_images, sampler=self.sampler(),
                        steps=settings.fid_steps, clip_x0=True, seed=settings.seed + 1, precision=settings.precision,
                        image_shape=tuple(self.images.shape[1:]))
        fid = fid_test(pics, self.config["dataset"])
        self.paused_s += self.clock() - t0
        return {"step": self.state["step"], "elapsed_s": self.state["elapsed_s"], "images": settings.fid_images,
                "ddim_steps": settings.fid_steps, "fid_test": fid}

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, labels): the next batch of a shuffled pass over the data, x0 in [-1, 1], labels (B,) int64;
        a new permutation each epoch."""
        b, s = self.train_config.batch_size, self.state
        if s["pos"] + b > len(self.images):
            s["perm"], s["pos"] = torch.randperm(len(self.images), generator=self.gen), 0
        idx = s["perm"][s["pos"] : s["pos"] + b]
        s["pos"] += b
        share = len(idx) // self.group.world_size  # this process's slice of the global batch
        idx = idx[self.group.rank * share : (self.group.rank + 1) * share]
        x0 = data.to_model_range(self.images[idx]).to(self.device, non_blocking=True)
        return x0, self.labels[idx].to(self.device, non_blocking=True)

    def init_from(self, source: Path) -> None:
        """Start from another checkpoint's EMA weights (model and EMA alike), with a fresh optimizer;
        deepened first where this run has more blocks per level than the source. A conditional run
        from an unconditional model keeps its label embedding's zero start: at step 0 it gives the
        source's outputs for every label."""
        config, weights = loading.read(source)
        ema = weights["ema"]
        unet_config, _, _ = loading.parse_config(config)
        if unet_config.blocks != self.model.config.blocks:
            old = UNet(unet_config)
            loading.load_weights(old, ema, source / "weights.safetensors")
            ema = deepen(old, self.model.config.blocks).state_dict()
        if unet_config.classes == 0 and self.model.config.classes > 0:  # the one tensor the source lacks
            ema = ema | {"label_embedding.weight": self.model.label_embedding.weight.detach().clone()}
        loading.load_weights(self.model, ema, source / "weights.safetensors")
        loading.load_weights(self.ema.shadow, ema, source / "weights.safetensors")

    def step(self, time_done: float | None = None) -> tuple[float | None, float]:
        """One optimizer step; returns (loss, lr), loss None for a skipped batch. `time_done`: the
        share of a time budget spent.

        A NaN or inf loss or gradient skips the batch (the step count stays) while the run's
        `skip_nonfinite` allows, and otherwise raises NonFiniteLoss before the weights change.
        """
        lr = learning_rate(self.train_config, self.state["step"], time_done)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x0, labels = self.next_batch()
        shard = (self.group.rank, self.group.world_size)
        classes = self.model.config.classes
        # A conditional model sees its labels, a share of them dropped; an unconditional one draws nothing more.
        labels = drop_labels(labels, self.train_config.label_dropout, classes, self.gen, shard) if classes else None
        with autocast(self.train_config.precision, self.device.type):
            loss = self.loss(self.compiled, self.schedule, x0, generator=self.gen, shard=shard, labels=labels)
        value = distributed.mean(self.group, loss)  # the same on every process, so all decide alike
        self.optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(value):
            return self._non_finite(f"loss is {value}"), lr
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train_config.grad_clip)
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return self._non_finite(f"gradient norm is {norm.item()}"), lr
        self.optimizer.step()
        self.ema.update(self.model, self.state["step"])
        self.state["step"] += 1
        return value, lr

    def _non_finite(self, what: str) -> None:
        step = self.state["step"] + 1
        if self.state["skipped"] < self.train_config.skip_nonfinite:
            self.state["skipped"] += 1
            if self.group.main:
                print(f"warning: {what} at step {step}: batch skipped ({self.state['skipped']} of "
                      f"{self.train_config.skip_nonfinite} allowed)", file=sys.stderr, flush=True)
            return None
        root = self.out / "checkpoints"
        kept = f"the last good checkpoint, {loading.find(self.out).name}, is kept" \
            if (root / "latest").is_file() else "no checkpoint was saved yet"
        raise NonFiniteLoss(f"{what} at step {step}: training stopped and {kept}; lower --lr, or pass "
                            f"--skip-nonfinite N to skip up to N such batches")


def train(
    out: str | Path,
    *,
    preset: str | None = None,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    minutes: float | None = None,
    device: str = "auto",
    compile: bool = False,
    progress: bool = True,
    command: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    conditional: bool = False,
    student: dict | None = None,
    **overrides,
) -> Path:
    """Train (or, with resume, continue) a run in folder `out`; returns the last checkpoint folder.

    `preset` and `dataset` (default small, mnist) are a resumed run's own. `overrides` replace
    fields of the preset's TrainConfig (steps, batch_size, lr, precision, ...).
    Training stops after `steps` or `minutes` (wall time less the FID checks'), whichever comes
    first; SIGINT or SIGTERM saves a checkpoint before stopping. `device` "auto" takes a CUDA GPU
    when there is one. `compile` runs the training forward and backward through torch.compile if a
    check on the first batch finds its gradients equal to the plain model's (train/compiled.py);
    otherwise training runs uncompiled.
    `init_from` (a run or checkpoint folder, or None for nothing) starts a new run from that
    checkpoint's EMA weights with a fresh optimizer; config.json records where it started.
    `conditional` makes a new run's model class-conditional (UNetConfig.classes: the training set's
    largest label + 1), with `label_dropout` of the labels replaced by "no label" in each batch; with
    `init_from` an unconditional model, the run starts as that model (its label embedding at zero).
    A resumed or continued conditional model stays conditional.
    `student` ({"method", "teacher", "steps", "levels", "trajectories", "own_states"}, as distill.distill
    gives it) makes a new run a student of that teacher, trained with its distillation loss, starting from
    the teacher's weights or `init_from`'s (a student with the same network); on resume the given ones
    must be the run's.
    With `minutes` and a cosine decay, the learning rate reaches 0 when the time runs out.
    `command`: what started this sitting, noted with the commit and machine in the run's
    sittings.jsonl (train/sittings.py), which `export` puts in the model's record.
    While it runs, the process holds the folder's lock (lock.py): a second train or export on it is refused.
    `clock`: the seconds the time budget is measured in (tests pass one that moves as they say).
    """
    out = Path(out)
    if init_from is not None and resume:
        raise ValueError("--init-from starts a new run; --resume continues one: pass only one")
    if student is not None and conditional:
        raise ValueError("a student is unconditional: no --conditional")
    if minutes is not None and not (minutes > 0):
        raise ValueError(f"--minutes must be positive, got {minutes}")
    group = distributed.join(device)
    try:
        if group.main and out.is_dir():
            lock.take(out)  # before reading the run: a second writer changes nothing (lock.py)
        folder = resume_from(out, resume, group.main)
        if student is not None and folder is None:
            config, source = student_config(student["method"], student["teacher"], student["steps"],
                                            student["levels"], overrides, student.get("trajectories"), init_from,
                                            student.get("own_states"))
        else:
            source = loading.find(init_from) if init_from is not None else None
            config = resolve(preset, dataset, folder, overrides, source, conditional)
            if student is not None:
                check_same_student(config, student["method"], student["teacher"], student["steps"], student["levels"],
                                   student.get("trajectories"), student.get("own_states"))
        run = _new_run(out, config, data_dir, group, compile, clock, conditional)
        if folder is not None:
            run.restore(folder)
        elif source is not None:
            run.init_from(source)
        if group.main:
            sittings.note(out, command, run.state["step"], minutes, resumed=folder is not None)
        return _loop(run, minutes, progress, resumed=folder is not None)
    finally:
        lock.release(out)
        distributed.leave(group)


def _new_run(out: Path, config: dict, data_dir, group: distributed.Group, compile: bool,
             clock: Callable[[], float] = time.monotonic, conditional: bool = False) -> Run:
    """A Run of `config` on its training set, after the checks that need the data or the processes;
    `conditional` gives an unconditional model as many classes as the training set has."""
    config["train"]["precision"] = pick_precision(config["train"]["precision"], group.device.type)
    if group.main:
        files.check_output_folder(out, "--out")
        lock.take(out)
    images, labels = data.load(config["dataset"], "train", data_dir)  # held once, as uint8
    if len(images) == 0:
        raise ValueError(f"the {config['dataset']} training set holds no images: nothing to train on")
    if conditional and not config["unet"]["classes"]:
        config["unet"]["classes"] = int(labels.max()) + 1
    if config["unet"]["classes"] and int(labels.max()) >= config["unet"]["classes"]:
        raise ValueError(f"the {config['dataset']} training set has label {int(labels.max())}; the conditional "
                         f"model knows {config['unet']['classes']} classes")
    batch = config["train"]["batch_size"]
    if batch % group.world_size:
        raise ValueError(f"--batch-size {batch} does not split evenly over {group.world_size} processes")
    if compile and group.world_size > 1:
        raise ValueError("--compile is not supported with several processes yet")
    config["unet"] |= {"in_channels": images.shape[1], "image_size": images.shape[-1]}
    config["world_size"] = group.world_size
    return Run(out, config, images, labels, group, compile=compile, clock=clock)


def _loop(run: Run, minutes: float | None, progress: bool, resumed: bool) -> Path:
    """Steps until `steps`, the time budget or a signal; process 0 logs, samples and saves."""
    state, main = run.state, run.group.main
    logs = Logs(run) if main else None
    budget = Budget(run, minutes)
    last_saved = state["step"] if resumed else -1
    bar = tqdm(total=run.train_config.steps, initial=state["step"], desc="train", disable=not (progress and main),
               dynamic_ncols=True)
    loss = lr = None
    try:
        with StopOnSignal() as stop:
            while state["step"] < run.train_config.steps:
                spent = budget.spent(run, stop.signalled)
                if spent >= 1:
                    break
                t0 = time.perf_counter()
                loss, lr = run.step(budget.decay_share(spent))
                if loss is None:
                    continue
                seconds = time.perf_counter() - t0
                state["elapsed_s"] += seconds
                bar.update(1)
                if main and logs.after_step(run, loss, lr, seconds, bar, budget.deadline + run.paused_s):
                    last_saved = state["step"]
    finally:
        bar.close()
    if main and logs.steps and loss is not None:  # the log ends at the step the run stopped at
        logs.row(run, loss, lr)
    return _finish(run, last_saved, stop.signalled)


def _finish(run: Run, last_saved: int, signalled: bool) -> Path:
    """Process 0 saves the last step (unless it just did) and, if not stopped by a signal, samples a
    last grid; then every process returns the checkpoint, or raises Interrupted after a signal."""
    step = run.state["step"]
    final = run.out / "checkpoints" / f"step_{step:07d}"
    if run.group.main:
        final = loading.find(run.out) if step == last_saved else run.save()
        if not signalled and step % run.train_config.sample_every != 0:
            run.sample_grid()
    distributed.barrier(run.group)
    if signalled:
        raise Interrupted(f"stopped by signal at step {step}; checkpoint saved in {final}")
    return final
