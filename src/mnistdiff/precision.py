"""Running a model in bf16 or fp32, on the CPU or a CUDA GPU."""

from __future__ import annotations

from contextlib import nullcontext

import torch

PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device_type: str = "cpu"):
    """bf16 autocast (matmuls and convolutions in bf16, reductions in fp32), or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision == "fp32":
        return nullcontext()
    raise ValueError(f"unknown precision {precision!r}: use 'fp32' or 'bf16'")


def pick_device(name: str) -> torch.device:
    """"auto": a CUDA GPU when torch sees one, else the CPU; or "cpu" / "cuda" as asked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this torch sees no CUDA GPU")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}: use 'auto', 'cpu' or 'cuda'")
    return torch.device(name)
