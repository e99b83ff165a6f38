"""How a model runs fast: under bf16 autocast, through torch.compile, in the best memory layout, and
with freed memory kept for reuse. The model file holds the model; the speed-ups live here, applied by
the code that compiles (`compile_model`, `prepare`) and by the CLI (`keep_freed_memory`). Their
measurements are in docs/speed.md.
"""

from __future__ import annotations

import ctypes
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from mnistdiff.precision import autocast, pick_precision

class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm, written out under torch.compile on a CPU in a form that compiles to faster code.

    Inductor's own lowering computes each group's scale and shift inside the loop over every
    element. Here per-channel moments are combined exactly per group, and two tiny matmuls spread
    the groups' scale and shift over the channels, so that loop is one multiply-add (see
    docs/speed.md). Eager mode and GPUs keep PyTorch's kernel; the parameters are nn.GroupNorm's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or not torch.compiler.is_compiling():
            return super().forward(x)
        b, c, g = x.shape[0], x.shape[1], self.num_groups
        x32 = x.float()  # statistics in fp32, as torch's kernel keeps them; the result in x's dtype
        var_c, mean_c = torch.var_mean(x32, (2, 3), correction=0)  # (B, C)
        mean = mean_c.view(b, g, -1).mean(-1)  # (B, G)
        # a group's variance: its channels' mean variance plus the variance of their means
        var = (var_c.view(b, g, -1) + (mean_c.view(b, g, -1) - mean[:, :, None]) ** 2).mean(-1)
        inv_std = torch.rsqrt(var + self.eps)
        with torch.autocast("cpu", enabled=False):
            spread = torch.eye(g).repeat_interleave(c // g, dim=1)  # (G, C): group -> its channels
            scale = (inv_std @ spread) * self.weight  # (B, C)
            shift = self.bias - ((mean * inv_std) @ spread) * self.weight
        return (x32 * scale[:, :, None, None] + shift[:, :, None, None]).to(x.dtype)


def use_fast_groupnorm(model: nn.Module) -> nn.Module:
    """Model with each affine nn.GroupNorm turned into the GroupNorm above, in place.

    The weights, state_dict keys and eager outputs stay as they were; only compiled CPU code changes.
    """
    for module in model.modules():
        if type(module) is nn.GroupNorm and module.affine:
            module.__class__ = GroupNorm
    return model


def adamw(params, device: torch.device, **options) -> torch.optim.AdamW:
    """torch.optim.AdamW with the fused update (one pass over the weights) where the device has it."""
    return torch.optim.AdamW(params, fused=device.type in ("cpu", "cuda"), **options)


def compile_model(model: nn.Module, **options):
    """torch.compile(model, **options), with the GroupNorm that compiles to faster CPU code."""
    return torch.compile(use_fast_groupnorm(model), **options)


def memory_format(device: torch.device, precision: str, compile: bool) -> torch.memory_format:
    """The layout that runs the model fastest: channels-last only for compiled fp32 on a CPU
    (compiled bf16 is slower in it; see docs/speed.md)."""
    if compile and pick_precision(precision, device.type) == "fp32" and device.type == "cpu":
        return torch.channels_last
    return torch.contiguous_format


class Runner(nn.Module):
    """model(xt, t[, labels]) under `precision` autocast and, with `compile`, through compile_model.

    Compiled, it pads a batch smaller than the largest it has seen, so that one graph serves the
    last, smaller batch of a run too; a batch's rows never mix in the model, so padding leaves them be.
    """

    def __init__(self, model: nn.Module, precision: str = "fp32", compile: bool = False):
        super().__init__()
        autocast(precision)  # fails on an unknown precision
        self.model, self.precision, self.compiled = model, precision, compile
        self.config = getattr(model, "config", None)
        self.run = compile_model(model, dynamic=False) if compile else model
        self.batch = 0

    def forward(self, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """labels go to the model only when given, so models that take none keep working."""
        b = xt.shape[0]
        if self.compiled:
            self.batch = max(self.batch, b)
            pad = self.batch - b
            if pad:
                xt, t = torch.cat([xt, xt.new_zeros(pad, *xt.shape[1:])]), torch.cat([t, t[:1].expand(pad)])
                if labels is not None:  # padded rows get "no label", the integer config.classes
                    labels = torch.cat([labels, labels.new_full((pad,), self.config.classes)])
        with autocast(self.precision, xt.device.type):
            out = self.run(xt, t) if labels is None else self.run(xt, t, labels=labels)
            return out[:b]


def prepare(model, *, precision: str = "fp32", compile: bool = False):
    """What runs `model` with `precision` and `compile`: the model itself for plain fp32, else a Runner.

    A Runner with the same settings is returned as it is, so callers may prepare twice. "auto" is
    resolved for the device the model's weights are on.
    """
    weight = next(model.parameters(), None)
    precision = pick_precision(precision, weight.device.type if weight is not None else "cpu")
    if isinstance(model, Runner):
        if (model.precision, model.compiled) == (precision, compile):
            return model
        model = model.model
    return Runner(model, precision, compile) if precision != "fp32" or compile else model


def fit_threads_to_load() -> int:
    """Use only the cores other jobs leave free (at least one), unless OMP_NUM_THREADS says.

    torch takes every core, and OpenMP's threads spin while they wait: on a machine busy with other
    jobs a thread that finds its core taken stalls the others, and a forward pass ran many times
    slower with 2 threads than with 1 on 2 busy cores (docs/speed.md). On an idle machine all cores
    are kept. Returns the thread count set.
    """
    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    busy = busy_cores()
    if busy is None:
        return torch.get_num_threads()
    cores = torch.get_num_threads()
    threads = max(1, min(cores, round(cores - busy)))
    torch.set_num_threads(threads)
    return threads


def busy_cores(seconds: float = 0.1) -> float | None:
    """How many cores other processes keep busy now, from /proc/stat over `seconds` (None off Linux).

    The load average would do elsewhere, but it trails by a minute: just after one job ends it
    still counts it."""
    def times() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]  # all but guest time; idle + iowait

    try:
        total0, idle0 = times()
        time.sleep(seconds)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / (total1 - total0))


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h


def keep_freed_memory() -> bool:
    """Tell glibc to serve every block from its heap and never trim it; True where it took effect.

    A forward pass allocates its activations afresh each call; above glibc's mmap threshold each
    block is mapped anew and every page of it faults in zeroed, which costs a compiled CPU forward
    a noticeable share of its time (see docs/speed.md). Kept on the heap, the blocks are reused;
    the cost is that the process keeps what it freed until it exits.

    Process-wide and lasting. The CLI and the benchmarks call it; call it yourself before sampling
    or training from Python. Does nothing off glibc (macOS, Windows, musl).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
