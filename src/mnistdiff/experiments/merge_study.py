"""What inversion-merges of two digit classes produce, measured with the shipped classifier."""

from __future__ import annotations

import itertools

import torch
from tqdm.auto import tqdm

from mnistdiff import markdown
from mnistdiff.data import to_model_range, to_uint8
from mnistdiff.diffusion import Schedule
from mnistdiff.evaluation.metrics import features_and_probs, frechet_distance, gaussian_stats
from mnistdiff.experiments.mixing import RULES, linear
from mnistdiff.samplers import ddim_invert, sample_ddim

CONFIDENT = 0.9


def pick_per_class(labels: torch.Tensor, per_class: int, seed: int = 0) -> dict[int, torch.Tensor]:
    """`per_class` random indices of each digit class."""
    gen = torch.Generator().manual_seed(seed)
    picks = {}
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than {per_class}")
        picks[c] = idx[torch.randperm(len(idx), generator=gen)[:per_class]]
    return picks


def merge_study(model, schedule: Schedule, images: torch.Tensor, labels: torch.Tensor, classifier,
                reference: tuple[torch.Tensor, torch.Tensor], levels: list[int], *, per_class: int = 20,
                weight: float = 0.5, batch_size: int = 64, seed: int = 0, progress: bool = True,
                iterations: int = 0) -> dict:
    """Mix image i of class a with image i of class b for every pair a < b, by each latent rule and
    by pixels. images: uint8 (N, 1, 28, 28), on the model's device; `levels`: DDIM's (samplers.levels);
    `iterations`: ddim_invert's refinement. Returns per-method summaries and per-pair class counts."""
    picks = pick_per_class(labels, per_class, seed)
    order = torch.cat([picks[c] for c in range(10)])
    x0 = to_model_range(images[order])
    latents = torch.cat([ddim_invert(model, x0[i : i + batch_size], schedule, levels, iterations=iterations)
                         for i in range(0, len(x0), batch_size)]).view(10, per_class, *x0.shape[1:])
    x0 = x0.view(10, per_class, *x0.shape[1:])
    pairs = list(itertools.combinations(range(10), 2))
    results = {}
    for method in tqdm(list(RULES) + ["pixel"], desc="merge-study", disable=not progress):
        if method == "pixel":
            mixed = torch.cat([linear(x0[a], x0[b], weight) for a, b in pairs])
        else:
            mixes = torch.cat([RULES[method](latents[a], latents[b], weight) for a, b in pairs])
            mixed = torch.cat([sample_ddim(model, mixes[i : i + batch_size], schedule, levels)
                               for i in range(0, len(mixes), batch_size)])
        results[method] = _summarise(classifier, to_uint8(mixed).cpu(), pairs, per_class, reference)
    return {"weight": weight, "per_class": per_class, "steps": len(levels) - 1, "inversion_iterations": iterations,
            "methods": results}


def _summarise(classifier, images: torch.Tensor, pairs, per_class: int, reference) -> dict:
    feats, probs = features_and_probs(classifier, images)
    conf, pred = probs.max(1)
    a = torch.tensor([p[0] for p in pairs]).repeat_interleave(per_class)
    b = torch.tensor([p[1] for p in pairs]).repeat_interleave(per_class)
    counts = {f"{pa}+{pb}": torch.bincount(pred[i * per_class : (i + 1) * per_class], minlength=10).tolist()
              for i, (pa, pb) in enumerate(pairs)}
    return {
        "images": len(images),
        "fid_test": frechet_distance(*gaussian_stats(feats), *reference),
        "mean_confidence": conf.mean().item(),
        "confident_share": (conf >= CONFIDENT).double().mean().item(),
        "share_a": (pred == a).double().mean().item(),
        "share_b": (pred == b).double().mean().item(),
        "share_third": ((pred != a) & (pred != b)).double().mean().item(),
        "counts": counts,
    }


def most_common(counts: list[int]) -> tuple[int, float]:
    top = max(range(10), key=lambda c: counts[c])
    return top, counts[top] / max(sum(counts), 1)


def table(study: dict) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the study's summary, one row per method."""
    headers = ["method", "images", "FID vs test", "mean confidence", "p >= 0.9", "class A", "class B",
               "third class", "2 + 5 -> 8"]
    rows = []
    for name, m in study["methods"].items():
        two_five = m["counts"]["2+5"]
        rows.append([name, str(m["images"]), f"{m['fid_test']:.2f}", f"{m['mean_confidence']:.3f}",
                     f"{m['confident_share']:.3f}", f"{m['share_a']:.3f}", f"{m['share_b']:.3f}",
                     f"{m['share_third']:.3f}", f"{two_five[8]}/{sum(two_five)}"])
    return headers, rows


def to_markdown(study: dict) -> str:
    title = (f"Merges at weight {study['weight']:g}: {study['per_class']} image pairs for each of the 45 class "
             f"pairs, DDIM-{study['steps']} inversion{_refined(study)}, judged by the shipped classifier")
    third = "\n".join(f"- {line}" for line in third_digits(study))
    return (f"{title}\n\n{markdown.table(*table(study))}\n"
            f"Class pairs whose most common result is a third digit (method: pair -> digit, share):\n\n{third}\n")


def _refined(study: dict) -> str:
    k = study.get("inversion_iterations", 0)  # studies written before the refinement have none
    return f" refined with K = {k} iterations a step" if k else ""


def third_digits(study: dict) -> list[str]:
    """One line per method: the class pairs whose most common result is neither of their digits."""
    lines = []
    for name, m in study["methods"].items():
        third = []
        for pair, counts in m["counts"].items():
            top, share = most_common(counts)
            if str(top) not in pair.split("+"):
                third.append(f"{pair} -> {top} ({share:.0%})")
        lines.append(f"{name}: " + (", ".join(third) if third else "none"))
    return lines
