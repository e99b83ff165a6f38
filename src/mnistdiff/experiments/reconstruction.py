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


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): this model's error by steps S, one row per refinement K (plain DDIM inversion:
    K = 0), beside the DDIM paper's CIFAR-10 figures."""
    steps = list(dict.fromkeys(r["steps"] for r in rows))
    body = []
    for k in dict.fromkeys(r.get("iterations", 0) for r in rows):
        cells = {r["steps"]: r["mse"] for r in rows if r.get("iterations", 0) == k}
        name = "MNIST, this model" + (f", K = {k} ({2 + k} S calls)" if k else "")
        body.append([name] + [f"{cells[s]:.2g}" if s in cells else "" for s in steps])
    body.append(["CIFAR-10, DDIM paper"] + [str(CIFAR10_REFERENCE.get(s) or "-") for s in steps])
    return ["S"] + [str(s) for s in steps], body


def to_markdown(rows: list[dict]) -> str:
    title = f"Reconstruction error of DDIM inversion, per-pixel MSE on [0, 1], {rows[0]['images']} test images"
    if any(r.get("iterations", 0) for r in rows):
        title += "; inversion refined by K iterations a step costs S (1 + K) model calls, decoding S more"
    return f"{title}\n\n{markdown.table(*table(rows))}"
