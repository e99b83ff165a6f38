"""Running a model in bf16 or fp32, on whichever device it lives."""

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
