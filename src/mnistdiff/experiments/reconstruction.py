"""How well deterministic DDIM inverts: invert, decode, compare (Table 2 of Song et al. 2021)."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from mnistdiff import markdown
from mnistdiff.diffusion import Schedule
from mnistdiff.samplers import ddim_invert, levels, sample_ddim

STEPS = (10, 20, 50, 100, 200, 500, 1000)
CIFAR10_REFERENCE = {10: 0.014, 20: 0.0065, 50: 0.0023, 100: 0.0009, 200: 0.0004, 500: 0.0001, 1000: 0.0001}


def reconstruction_errors(model, schedule: Schedule, x0: torch.Tensor, steps_list=STEPS, batch_size: int = 64,
                          progress: bool = True) -> list[dict]:
    """Per-pixel MSE on the [0, 1] scale between x0 (N, C, H, W) in [-1, 1] and its decoded inversion."""
    rows = []
    for n_steps in tqdm(steps_list, desc="reconstruction", disable=not progress):
        grid = levels(n_steps, schedule)
        total = 0.0
        for i in range(0, len(x0), batch_size):
            x = x0[i : i + batch_size]
            back = sample_ddim(model, ddim_invert(model, x, schedule, grid), schedule, grid).clamp(-1, 1)
            total += (((back - x) / 2) ** 2).sum().item()
        rows.append({"steps": n_steps, "images": len(x0), "mse": total / x0.numel(),
                     "cifar10_reference": CIFAR10_REFERENCE.get(n_steps)})
    return rows


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): this model's error by steps S, beside the DDIM paper's CIFAR-10 figures."""
    headers = ["S"] + [str(r["steps"]) for r in rows]
    return headers, [["MNIST, this model"] + [f"{r['mse']:.2g}" for r in rows],
                     ["CIFAR-10, DDIM paper"] + [str(r["cifar10_reference"] or "-") for r in rows]]


def to_markdown(rows: list[dict]) -> str:
    title = f"Reconstruction error of DDIM inversion, per-pixel MSE on [0, 1], {rows[0]['images']} test images"
    return f"{title}\n\n{markdown.table(*table(rows))}"
