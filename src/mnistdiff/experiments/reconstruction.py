"""How well deterministic DDIM inverts: invert, decode, compare (Table 2 of Song et al. 2021)."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from mnistdiff.diffusion import Schedule
from mnistdiff.samplers import ddim_invert, levels, sample_ddim

STEPS = (10, 20, 50, 100, 200, 500, 1000)
CIFAR10_REFERENCE = {10: 0.014, 20: 0.0065, 50: 0.0023, 100: 0.0009, 200: 0.0004, 500: 0.0001, 1000: 0.0001}


def reconstruction_errors(model, schedule: Schedule, x0: torch.Tensor, steps_list=STEPS, batch_size: int = 64,
                          progress: bool = True, iterations=(0,)) -> list[dict]:
    """Per-pixel MSE on the [0, 1] scale between x0 (N, C, H, W) in [-1, 1] and its decoded inversion, one
    row per (iterations K of ddim_invert's refinement, steps S): S (1 + K) model calls to invert, S to decode."""
    rows = []
    for k, n_steps in tqdm([(k, s) for k in iterations for s in steps_list], desc="reconstruction",
                           disable=not progress):
        grid = levels(n_steps, schedule)
        total = 0.0
        for i in range(0, len(x0), batch_size):
            x = x0[i : i + batch_size]
            back = sample_ddim(model, ddim_invert(model, x, schedule, grid, iterations=k), schedule, grid).clamp(-1, 1)
            total += (((back - x) / 2) ** 2).sum().item()
        rows.append({"steps": n_steps, "iterations": k, "images": len(x0), "mse": total / x0.numel(),
                     "model_calls": n_steps * (2 + k), "cifar10_reference": CIFAR10_REFERENCE.get(n_steps)})
    return rows


def to_markdown(rows: list[dict]) -> str:
    """One row per refinement (plain DDIM inversion: K = 0), columns of S, and the DDIM paper's row."""
    steps = list(dict.fromkeys(r["steps"] for r in rows))
    lines = [f"Reconstruction error of DDIM inversion, per-pixel MSE on [0, 1], {rows[0]['images']} test images; "
             "inversion refined by K iterations a step costs S (1 + K) model calls, decoding S more", "",
             "| S | " + " | ".join(str(s) for s in steps) + " |", "|---|" + "---|" * len(steps)]
    for k in dict.fromkeys(r.get("iterations", 0) for r in rows):
        cells = {r["steps"]: r["mse"] for r in rows if r.get("iterations", 0) == k}
        name = "MNIST, ours" + (f", K = {k} ({2 + k} S calls)" if k else " (2 S calls)")
        lines.append(f"| {name} | " + " | ".join(f"{cells[s]:.2g}" if s in cells else "" for s in steps) + " |")
    lines.append("| CIFAR-10, DDIM paper | " + " | ".join(str(CIFAR10_REFERENCE.get(s) or "-") for s in steps) + " |")
    return "\n".join(lines) + "\n"
