"""What inverted latents and their mixes look like beside the N(0, I) noise the model samples from."""

from __future__ import annotations

import math

import torch

from mnistdiff.data import to_model_range
from mnistdiff.diffusion import Schedule
from mnistdiff.experiments.merge_study import pick_per_class
from mnistdiff.experiments.mixing import RULES
from mnistdiff.samplers import ddim_invert


def latent_stats(z: torch.Tensor) -> dict:
    """Statistics of latents z (N, C, H, W) that N(0, I) noise has in closed form: norm / sqrt(dim) 1,
    standard deviation of all values 1, per-pixel spread across latents 1, excess kurtosis 0, and the
    Kolmogorov-Smirnov distance of the flattened values to N(0, 1) near 0 (with its asymptotic p-value)."""
    flat = z.flatten(1).double()  # (N, D)
    values = flat.flatten()
    centred = values - values.mean()
    ks, p = ks_normal(values)
    return {
        "latents": len(flat),
        "norm_over_sqrt_dim": (flat.norm(dim=1) / math.sqrt(flat.shape[1])).mean().item(),
        "mean": values.mean().item(),
        "std": values.std().item(),
        "pixel_std": flat.std(dim=0).mean().item() if len(flat) > 1 else float("nan"),
        "excess_kurtosis": (centred.pow(4).mean() / centred.pow(2).mean().pow(2) - 3).item(),
        "ks_distance": ks,
        "ks_p_value": p,
    }


def ks_normal(values: torch.Tensor) -> tuple[float, float]:
    """The Kolmogorov-Smirnov statistic of `values` against N(0, 1), and its asymptotic p-value
    (the Kolmogorov distribution with Stephens' small-sample correction)."""
    v = values.double().flatten().sort().values
    m = len(v)
    cdf = 0.5 * (1 + torch.erf(v / math.sqrt(2)))
    i = torch.arange(1, m + 1, dtype=torch.float64)
    d = max((i / m - cdf).max().item(), (cdf - (i - 1) / m).max().item())
    lam = (math.sqrt(m) + 0.12 + 0.11 / math.sqrt(m)) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(max(p, 0.0), 1.0)


def class_distances(mixes: torch.Tensor, latents: torch.Tensor, labels: torch.Tensor, target: int) -> dict:
    """How far mixes (M, ...) lie from the latents (N, ...) of class `target` against the other classes'
    (labels (N,)): mean Euclidean distance to each group, and the share of mixes whose nearest latent is
    of class `target`."""
    d = torch.cdist(mixes.flatten(1).double(), latents.flatten(1).double())  # (M, N)
    is_target = labels == target
    return {
        "to_target": d[:, is_target].mean().item(),
        "to_others": d[:, ~is_target].mean().item(),
        "nearest_is_target": is_target[d.argmin(dim=1)].double().mean().item(),
    }


@torch.no_grad()
def latent_study(model, schedule: Schedule, images: torch.Tensor, labels: torch.Tensor, levels: list[int], *,
                 iterations=(0, 5), pair: tuple[int, int] = (2, 5), target: int = 8, weight: float = 0.5,
                 per_class: int = 20, batch_size: int = 64, seed: int = 0) -> dict:
    """Invert `per_class` test digits of each class (images uint8 (N, 1, 28, 28), on the model's device)
    plainly and with each refinement K in `iterations`; mix the pair's latents by each rule at
    `weight`. For each K: the latents' statistics, and each mix's, with its distances to the
    inverted `target` digits against the other digits'. Noise's statistics come first, for scale."""
    picks = pick_per_class(labels, per_class, seed)
    order = torch.cat([picks[c] for c in range(10)])
    x0, classes = to_model_range(images[order]), labels[order].cpu()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    study = {"steps": len(levels) - 1, "pair": list(pair), "target": target, "weight": weight,
             "per_class": per_class, "noise": latent_stats(noise), "by_iterations": {}}
    for k in iterations:
        z = torch.cat([ddim_invert(model, x0[i : i + batch_size], schedule, levels, iterations=k)
                       for i in range(0, len(x0), batch_size)]).cpu()
        za, zb = z[classes == pair[0]], z[classes == pair[1]]
        mixes = {rule: mix(za, zb, weight) for rule, mix in RULES.items()}
        study["by_iterations"][str(k)] = {
            "model_calls_a_step": 1 + k,
            "latents": latent_stats(z),
            "mixes": {rule: latent_stats(m) | class_distances(m, z, classes, target) for rule, m in mixes.items()},
        }
    return study


def to_markdown(study: dict) -> str:
    """One table: noise, then for each K the latents and each rule's mix."""
    target, (a, b) = study["target"], study["pair"]
    lines = [f"Latents of {study['per_class']} test digits a class, DDIM-{study['steps']} inversion refined with K "
             f"iterations a step ((1 + K) model calls), and their {a} + {b} mixes at weight {study['weight']:g}; "
             f"N(0, I) noise has 1, 1, 1, 0 and KS distance near 0", "",
             f"| K | latents | norm / sqrt(dim) | std | per-pixel std | excess kurtosis | KS distance | "
             f"distance to {target}s | to other digits | nearest is an {target} |", "|---" * 10 + "|"]

    def row(k, name, s):
        far = (f"{s['to_target']:.2f} | {s['to_others']:.2f} | {s['nearest_is_target']:.2f}" if "to_target" in s
               else "| |")
        return (f"| {k} | {name} | {s['norm_over_sqrt_dim']:.3f} | {s['std']:.3f} | {s['pixel_std']:.3f} | "
                f"{s['excess_kurtosis']:.2f} | {s['ks_distance']:.3f} | {far} |")

    lines.append(row("-", "N(0, I) noise", study["noise"]))
    for k, entry in study["by_iterations"].items():
        lines.append(row(k, "inverted test digits", entry["latents"]))
        lines += [row(k, f"{rule} mix", s) for rule, s in entry["mixes"].items()]
    return "\n".join(lines) + "\n"
