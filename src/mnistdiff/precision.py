"""Running a model in bf16 or fp32, on the CPU or a CUDA GPU."""

from __future__ import annotations

from contextlib import nullcontext
from functools import cache

import torch

PRECISIONS = ("auto", "fp32", "bf16")


@cache
def native_bf16(device_type: str = "cpu") -> bool:
    """Whether the device multiplies bf16 in hardware: a CPU with AVX512-BF16 or AMX units, or a CUDA
    GPU that supports bf16. Elsewhere (AVX2 CPUs: most laptops and many servers) bf16 autocast is
    emulated and runs several times slower than fp32 (docs/speed.md)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's, private
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def pick_precision(precision: str, device_type: str = "cpu") -> str:
    """"auto" becomes bf16 where the device has bf16 units (native_bf16), else fp32; the others stay."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use 'auto', 'fp32' or 'bf16'")
    if precision == "auto":
        return "bf16" if native_bf16(device_type) else "fp32"
    return precision


def autocast(precision: str, device_type: str = "cpu"):
    """bf16 autocast (matmuls and convolutions in bf16, reductions in fp32), or nothing for fp32;
    "auto" is pick_precision()'s choice for `device_type`."""
    if pick_precision(precision, device_type) == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return nullcontext()


def pick_device(name: str) -> torch.device:
    """"auto": a CUDA GPU when torch sees one, else the CPU; or "cpu" / "cuda" as asked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this torch sees no CUDA GPU")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}: use 'auto', 'cpu' or 'cuda'")
    return torch.device(name)
