"""Guided merges of one class pair: with classifier-free guidance towards a target digit, how often
does A + B decode to the target, and how much of each input's strokes survive?"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from mnistdiff import markdown
from mnistdiff.data import to_model_range, to_uint8
from mnistdiff.diffusion import Schedule
from mnistdiff.evaluation.metrics import features_and_probs
from mnistdiff.experiments.merge import SCALES, towards
from mnistdiff.experiments.merge_study import pick_per_class
from mnistdiff.experiments.mixing import RULES, linear
from mnistdiff.samplers import Guided, ddim_invert, sample_ddim
from mnistdiff.samplers.guidance import check_guidance, classes, label_list

INK = 0.5  # a pixel is inked above this, on [0, 1]


def guided_merge_study(model, schedule: Schedule, images: torch.Tensor, labels: torch.Tensor, classifier,
                       levels: list[int], *, pair: tuple[int, int] = (2, 5), target: int = 8,
                       scales=SCALES, invert_with: str = "labels", per_class: int = 20, weight: float = 0.5,
                       batch_size: int = 64, seed: int = 0, iterations: int = 0, progress: bool = True) -> dict:
    """Mix image i of class A = pair[0] with image i of class B (the images the all-pairs study picks)
    by each latent rule and by pixels, and decode each mix with no label, then towards `target` at
    each guidance scale. images: uint8 (N, 1, 28, 28) on the model's device, labels (N,) their classes.

    Latents: A and B inverted by the conditional model with their labels (invert_with "labels") or with
    "no label" ("none"). Pixels: the pixel mix, inverted with "no label" (it is neither digit) and
    decoded as the latent mixes are. One row per scale, "no guidance" (None) first: score()'s numbers."""
    if invert_with not in ("labels", "none"):
        raise ValueError(f"invert_with is 'labels' or 'none', got {invert_with!r}")
    towards(model, target, None, 1)  # a one-line error for a bad target or an unconditional model
    label_list(list(pair), 2, classes(model))
    scales = [check_guidance(s) for s in scales]
    picks = pick_per_class(labels, per_class, seed)
    a, b = images[picks[pair[0]]], images[picks[pair[1]]]  # uint8 (P, 1, 28, 28)
    x_a, x_b = to_model_range(a), to_model_range(b)

    def invert(x, label):  # by the conditional model with `label` for each image (None: "no label")
        return torch.cat([ddim_invert(_labelled(model, label, len(chunk), 1.0), chunk, schedule, levels,
                                      iterations=iterations) for chunk in x.split(batch_size)])

    def decode(z, scale):  # towards the target at `scale`; None: with "no label"
        return torch.cat([sample_ddim(_labelled(model, None if scale is None else target, len(chunk), scale), chunk,
                                      schedule, levels) for chunk in z.split(batch_size)])

    by_label = invert_with == "labels"
    z_a, z_b = invert(x_a, pair[0] if by_label else None), invert(x_b, pair[1] if by_label else None)
    starts = {rule: mix(z_a, z_b, weight) for rule, mix in RULES.items()}
    starts["pixel"] = invert(linear(x_a, x_b, weight), None)
    rows = {name: [] for name in starts}
    for scale in tqdm([None, *scales], desc="guided merge-study", disable=not progress):
        for name, start in starts.items():
            decoded = to_uint8(decode(start, scale)).cpu()
            _, probs = features_and_probs(classifier, decoded)
            rows[name].append({"guidance": scale} | score(decoded, a.cpu(), b.cpu(), probs, target))
    return {"pair": list(pair), "target": target, "weight": weight, "per_class": per_class,
            "steps": len(levels) - 1, "inversion_iterations": iterations, "invert_with": invert_with,
            "scales": [None, *scales], "rules": rows}


def _labelled(model, label: int | None, n: int, scale: float | None):
    """`model` guided towards `label` for each of n images at `scale`; `model` itself for label None."""
    return model if label is None else Guided(model, torch.full((n,), label), scale)


def score(decoded: torch.Tensor, a: torch.Tensor, b: torch.Tensor, probs: torch.Tensor, target: int) -> dict:
    """decoded, a, b: uint8 (N, 1, H, W), merge i of a[i] and b[i]; probs (N, classes): the classifier's.

    target_share: read as `target` (its most probable class); target_confidence: the mean probability
    of `target`; mse_a, mse_b: mean per-pixel MSE on [0, 1] to a and to b; ink_a, ink_b: the share of
    a's (b's) ink pixels (> INK on [0, 1]), over all N images, inked in the merge too; closer_to_a:
    the share of merges with a smaller MSE to a than to b."""
    d, xa, xb = (x.double().flatten(1) / 255 for x in (decoded, a, b))  # (N, H W)
    mse_a, mse_b = ((d - xa) ** 2).mean(1), ((d - xb) ** 2).mean(1)
    inked = d > INK

    def kept(x):
        ink = x > INK
        return ((ink & inked).sum().double() / ink.sum().clamp_min(1)).item()

    return {
        "images": len(d),
        "target_share": (probs.argmax(1) == target).double().mean().item(),
        "target_confidence": probs[:, target].double().mean().item(),
        "mse_a": mse_a.mean().item(),
        "mse_b": mse_b.mean().item(),
        "ink_a": kept(xa),
        "ink_b": kept(xb),
        "closer_to_a": (mse_a < mse_b).double().mean().item(),
    }


def table(study: dict, rule: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of one rule: a row per guidance scale, "none" first."""
    target = study["target"]
    headers = ["guidance", f"read as {target}", f"mean p({target})", "MSE to A", "MSE to B", "A's ink kept",
               "B's ink kept", "closer to A"]
    rows = [["none" if r["guidance"] is None else f"{r['guidance']:g}", f"{r['target_share']:.3f}",
             f"{r['target_confidence']:.3f}", f"{r['mse_a']:.4f}", f"{r['mse_b']:.4f}", f"{r['ink_a']:.3f}",
             f"{r['ink_b']:.3f}", f"{r['closer_to_a']:.3f}"] for r in study["rules"][rule]]
    return headers, rows


def to_markdown(study: dict) -> str:
    (a, b), target = study["pair"], study["target"]
    inverted = "with their labels" if study["invert_with"] == "labels" else 'with "no label"'
    refined = f", refined with K = {study['inversion_iterations']}" if study["inversion_iterations"] else ""
    lines = [f"Guided merges {a} + {b} -> {target}: image i of {study['per_class']} {a}s mixed with image i of as "
             f"many {b}s at weight {study['weight']:g}; A and B inverted {inverted} (DDIM-{study['steps']}"
             f"{refined}), each mix decoded by deterministic DDIM with no label (guidance none) or towards "
             f"{target} at guidance scale s. pixel: the pixel mix, inverted with no label and decoded the same "
             f"way. Read by the shipped classifier; MSE per pixel on [0, 1]; ink: pixels above {INK} on [0, 1].",
             ""]
    if study.get("command"):
        lines += [f"    {study['command']}", ""]
    for rule in study["rules"]:
        lines += [f"{rule}:", "", markdown.table(*table(study, rule))]
    return "\n".join(lines)
