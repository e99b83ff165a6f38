"""Drawing images from a trained model with any registered sampler, in batches."""

from __future__ import annotations

import inspect

import torch
from tqdm.auto import tqdm

from mnistdiff.data import to_uint8
from mnistdiff.diffusion import Schedule
from mnistdiff.runtime import prepare
from mnistdiff.samplers import DEFAULT_SAMPLER, SAMPLERS, sampler_levels
from mnistdiff.samplers.common import distilled_method, distilled_steps
from mnistdiff.samplers.guidance import DEFAULT_GUIDANCE, Guided, check_guidance, classes, clips, label_list
from mnistdiff.samplers.levels import STUDENT_SPACING


def generate(
    model,
    schedule: Schedule,
    n: int,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    spacing: str | None = None,
    t_end: int | None = None,
    clip_x0: bool | None = None,
    seed: int = 0,
    batch_size: int = 64,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    precision: str = "fp32",
    compile: bool = False,
    progress: bool = False,
    labels=None,
    guidance: float | None = None,
    **options,
) -> torch.Tensor:
    """n images as uint8 (n, C, H, W) from SAMPLERS[sampler] over sampler_levels(sampler, steps, schedule,
    spacing, t_end); batch k starts from noise seeded with seed + k, so the same seed and batch size give
    the same images. `sampler` None is DEFAULT_SAMPLER, or for a distilled student its own (model_defaults).

    `steps` counts model evaluations, at most: by default samplers.default_steps (50, or all T for "ddpm");
    Heun and EDM take 2n - 1 for n steps, so an even count leaves one unused (samplers.steps_taken says
    how many run). `spacing` None is the sampler's own grid (samplers.default_spacing). `options` go to the
    sampler (eta for "ddim", variance for "ddpm", s_churn... for "edm"). precision "bf16" runs the model under bf16
    autocast, the sampler's arithmetic staying fp32; `compile` runs it through torch.compile, built
    once, on the first batch (runtime.prepare).

    `labels` (a conditional model only): an int, or a sequence or tensor of ints in 0..classes-1 that
    repeats in turn (image i gets labels[i % len], so range(10) gives balanced batches); `guidance` is
    the classifier-free guidance scale s (None: samplers.DEFAULT_GUIDANCE), which costs one model call of
    a doubled batch per evaluation unless s is 1 or 0 (samplers.Guided). Without labels the model runs
    unconditionally, as before. `clip_x0` None clips the predicted x0 to [-1, 1] at each step unless
    guidance is above 1 (samplers.guidance.clips).
    """
    sampler, steps, spacing = model_defaults(model, sampler, steps, spacing)
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if n < 1 or batch_size < 1:
        raise ValueError("n and batch size must be at least 1")
    fn = SAMPLERS[sampler]
    try:
        inspect.signature(fn).bind(model, None, schedule, [], **options)
    except TypeError:
        raise ValueError(f"sampler {sampler!r} takes no option among {', '.join(options)}") from None
    if labels is None and guidance is not None:
        raise ValueError("guidance needs labels: pass labels to guide towards")
    if labels is not None:
        labels = label_list(labels, n, classes(model))
        guidance = check_guidance(DEFAULT_GUIDANCE if guidance is None else guidance)
    if clip_x0 is None:
        clip_x0 = clips(guidance)
    grid = sampler_levels(sampler, steps, schedule, spacing, t_end)
    device = next(model.parameters()).device
    model = prepare(model, precision=precision, compile=compile)
    batches = range(0, n, batch_size)
    out = []
    # One bar: over the batches, or over the steps when there is one batch.
    for k, start in enumerate(tqdm(batches, desc=f"{n} images", disable=not progress or len(batches) == 1)):
        g = torch.Generator(device=device).manual_seed(seed + k)
        x_T = torch.randn((min(batch_size, n - start), *image_shape), generator=g, device=device)
        batch = model if labels is None else Guided(model, labels[start : start + len(x_T)].to(device), guidance)
        x0 = fn(batch, x_T, schedule, grid, generator=g, clip_x0=clip_x0, progress=progress and len(batches) == 1,
                **options)
        out.append(to_uint8(x0).cpu())
    return torch.cat(out)


def model_defaults(model, sampler: str | None, steps: int | None, spacing: str | None) -> tuple:
    """(sampler, steps, spacing) for `model`, the given ones kept: DEFAULT_SAMPLER and its own defaults,
    except for a student distilled for N steps (its config's distilled_steps), which takes N steps on
    the trailing grid with its method's sampler ("consistency" for a consistency model, else "ddim") and
    refuses more steps than N."""
    distilled = distilled_steps(model)
    if not distilled:
        return sampler or DEFAULT_SAMPLER, steps, spacing
    if steps is not None and steps > distilled:
        raise ValueError(f"this student was distilled for {distilled} step(s): ask for at most {distilled} "
                         f"(--steps {steps}), or sample its teacher")
    own = "consistency" if distilled_method(model) == "consistency" else "ddim"
    return sampler or own, distilled if steps is None else steps, spacing or STUDENT_SPACING


def student_sampler(model, steps: int | None, schedule: Schedule) -> tuple:
    """(sampler function, grid) a distilled student samples with in `steps` calls (None: the steps it
    was distilled for), as generate() picks them (model_defaults)."""
    sampler, steps, spacing = model_defaults(model, None, steps, None)
    return SAMPLERS[sampler], sampler_levels(sampler, steps, schedule, spacing)
