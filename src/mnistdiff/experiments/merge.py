"""Inversion-merge: invert two images to latents with deterministic DDIM, mix, decode; with a
class-conditional model, invert with the images' labels and decode the mix towards a target digit."""

from __future__ import annotations

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.experiments.mixing import RULES, linear
from mnistdiff.samplers import ddim_invert, sample_ddim
from mnistdiff.samplers.guidance import DEFAULT_GUIDANCE, Guided, check_guidance, classes, label_list

# The weights of b in the report's merge figures, and the merge command's default.
WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)
# The guidance scales of the guided merge study (merge-study --target) when none are given.
SCALES = (1.0, 2.0, 3.0)


def merge(model, schedule: Schedule, a: torch.Tensor, b: torch.Tensor, weights: list[float], *,
          rule: str = "linear", levels: list[int], clip_x0: bool = False, iterations: int = 0,
          labels: tuple | None = None, target: int | None = None,
          guidance: float | None = None) -> dict[str, torch.Tensor]:
    """a, b: (B, C, H, W) in [-1, 1]. Returns the reconstructions of a and b, and for each weight
    the decoded latent mix and the pixel mix, each (W, B, C, H, W). `levels`: the DDIM levels of
    inversion and decoding, as samplers.levels gives; `iterations`: ddim_invert's refinement.

    A class-conditional model (config.classes > 0) takes `labels`, (labels of a, labels of b), each an
    int, B ints or None ("no label"): a and b are inverted by the conditional model with them (scale 1),
    and their reconstructions decoded with them. `target`, a class, decodes every mix towards it with
    classifier-free guidance of scale `guidance` (None: samplers.DEFAULT_GUIDANCE), on deterministic
    DDIM. Without them the model runs with "no label", as an unconditional model does.

    Decoding does not clip x0 by default: inverted latents are not standard Gaussian (their
    std is about 0.8 on MNIST), the predicted x0 at high noise leaves [-1, 1], and clipping
    it there turns reconstructions into other digits."""
    if rule not in RULES:
        raise ValueError(f"unknown mixing rule {rule!r}: choose one of {', '.join(RULES)}")
    inverting = labelled(model, labels, len(a))
    decoding = towards(model, target, guidance, len(weights) * len(a))
    latents = ddim_invert(inverting, torch.cat([a, b]), schedule, levels, iterations=iterations)
    za, zb = latents.chunk(2)
    mixes = torch.cat([RULES[rule](za, zb, w) for w in weights])
    if inverting is model and decoding is model:  # one batch, as before labels existed
        decoded = sample_ddim(model, torch.cat([latents, mixes]), schedule, levels, clip_x0=clip_x0)
    else:
        decoded = torch.cat([sample_ddim(inverting, latents, schedule, levels, clip_x0=clip_x0),
                             sample_ddim(decoding, mixes, schedule, levels, clip_x0=clip_x0)])
    recon_a, recon_b, mixed = decoded[: len(a)], decoded[len(a) : 2 * len(a)], decoded[2 * len(a) :]
    return {
        "recon_a": recon_a,
        "recon_b": recon_b,
        "latent_mix": mixed.view(len(weights), *a.shape),
        "pixel_mix": torch.stack([linear(a, b, w) for w in weights]),
    }


def labelled(model, labels: tuple | None, n: int):
    """The model that inverts a batch of n images of a and n of b: the conditional model (scale 1) with
    labels = (labels of a, labels of b), each an int, n ints or None ("no label"); `model` itself
    when labels is None."""
    if labels is None:
        return model
    if len(labels) != 2:
        raise ValueError(f"labels are (labels of a, labels of b), got {labels!r}")
    count = classes(model)
    if count < 1:
        raise ValueError("labels need a conditional model (config.classes > 0); this one is unconditional")
    both = [torch.full((n,), count) if given is None else label_list(given, n, count) for given in labels]
    return Guided(model, torch.cat(both), 1.0)


def towards(model, target: int | None, guidance: float | None, n: int):
    """The model that decodes n mixes towards class `target` with guidance scale `guidance` (None:
    DEFAULT_GUIDANCE); `model` itself without a target."""
    if target is None:
        if guidance is not None:
            raise ValueError("guidance needs a target: the class to decode towards")
        return model
    if isinstance(target, bool) or not isinstance(target, int):
        raise ValueError(f"target must be one class number, got {target!r}")
    count = classes(model)
    if count < 1:
        raise ValueError("a target needs a conditional model (config.classes > 0); this one is unconditional")
    if not 0 <= target < count:
        raise ValueError(f"target {target} is outside 0..{count - 1} (this model has {count} classes)")
    scale = check_guidance(DEFAULT_GUIDANCE if guidance is None else guidance)
    return Guided(model, torch.full((n,), target), scale)
