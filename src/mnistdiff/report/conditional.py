"""The report's section on a class-conditional model: "Draw me a 7". One grid row per digit at the
default guidance scale, and a table over guidance scales: the share of class-balanced samples the
shipped classifier reads as the requested digit, their FID beside the floor, precision and recall."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.images import DIGITS, grid, image_shape, save_png
from mnistdiff.samplers.guidance import DEFAULT_GUIDANCE, classes

SHIPPED_NAME = "conditional"  # loading.SHIPPED's name of the shipped conditional model: the default
STEPS = 50  # DDIM steps of the grid and of every row of the table


@dataclass
class Conditional:
    """The conditional model on the report's device (behind one Runner), where it came from and its
    weights' checksum; or, with `note`, why the section is left out."""

    model: torch.nn.Module | None = None
    schedule: Schedule | None = None
    source: str = ""
    checksum: str | None = None
    note: str | None = None


def load(checkpoint: str | Path | None, target: torch.device, settings, dataset: str) -> Conditional:
    """The model of `checkpoint` (a run or checkpoint folder, or the shipped conditional model's name),
    or a Conditional whose note says why there is none: no checkpoint given, none shipped with this
    installation, or images the report's classifier cannot read. A model without labels is an error."""
    from mnistdiff import load_checkpoint
    from mnistdiff.loading import find, shipped
    from mnistdiff.report.cache import model_checksum
    from mnistdiff.runtime import prepare

    if checkpoint is None:
        return Conditional(note="No conditional model given: --conditional-checkpoint PATH adds this section.")
    if checkpoint == SHIPPED_NAME and not shipped(SHIPPED_NAME):
        return Conditional(note="This installation ships no conditional model: --conditional-checkpoint PATH "
                                "(a model trained with `mnistdiff train --conditional`) adds this section.")
    model, schedule, config = load_checkpoint(checkpoint)
    if classes(model) < 1:
        raise ValueError(f"--conditional-checkpoint {checkpoint}: not a conditional model (its config has no "
                         "classes); train one with `mnistdiff train --conditional`")
    if image_shape(config) != DIGITS or config["dataset"] != dataset:
        return Conditional(note=f"The conditional model {checkpoint} makes {config['dataset']} images of "
                                f"{'x'.join(map(str, image_shape(config)))}: the section needs 1x28x28 "
                                f"{dataset} digits, as the report's model makes.")
    runner = prepare(model.to(target), precision=settings.precision, compile=settings.compile)
    source = "the shipped conditional model" if checkpoint == SHIPPED_NAME else str(find(checkpoint))
    return Conditional(runner, schedule, source, model_checksum(find(checkpoint)))


def section(ctx, cond: Conditional) -> dict:
    """The grid (one row per digit, DDIM-50 at DEFAULT_GUIDANCE) and one row of scores per guidance
    scale of the settings, each from fid_images class-balanced images (labels 0..9 in turn)."""
    from mnistdiff.evaluation import evaluate
    from mnistdiff.generation import generate

    if cond.note:
        return {"available": False, "note": cond.note, "files": []}
    s = ctx.settings
    common = {"sampler": "ddim", "steps": STEPS, "seed": s.seed, "batch_size": s.batch_size,
              "precision": s.precision, "compile": s.compile, "progress": True}
    count = classes(cond.model)
    digits = torch.arange(count).repeat_interleave(s.digit_row)  # row d holds digit d
    images = generate(cond.model, cond.schedule, len(digits), labels=digits, guidance=DEFAULT_GUIDANCE, **common)
    save_png(ctx.out / "conditional-grid.png", grid(images, nrow=s.digit_row), scale=2)
    rows = []
    for scale in s.guidance_scales:
        t0 = time.perf_counter()
        images = generate(cond.model, cond.schedule, s.fid_images, labels=list(range(count)), guidance=scale,
                          **common)
        seconds = time.perf_counter() - t0
        requested = torch.arange(s.fid_images) % count
        rows.append({"guidance": scale, "seconds": seconds,
                     **evaluate(images, ctx.dataset, ctx.data_dir, seed=s.seed, floors=ctx.floors(s.fid_images),
                                requested=requested)})
    return {"available": True, "model": cond.source, "classes": count, "default_guidance": DEFAULT_GUIDANCE,
            "steps": STEPS, "digit_row": s.digit_row, "rows": rows, "files": ["conditional-grid.png"]}


def rerun_command(s, checkpoint, conditional_checkpoint, device: torch.device,
                  data_dir: str | None) -> dict[str, str]:
    """The guidance benchmark's command that reruns the conditional section's table (and, beside it,
    the report's model unconditionally at the same count)."""
    if conditional_checkpoint is None:
        return {}
    command = ["python", "benchmarks/guidance.py", "--checkpoint", str(conditional_checkpoint),
               "--scales", ",".join(f"{g:g}" for g in s.guidance_scales), "--n", str(s.fid_images),
               "--steps", str(STEPS), "--seed", str(s.seed), "--batch-size", str(s.batch_size),
               "--precision", s.precision, "--device", device.type,
               *([] if checkpoint is None else ["--baseline", str(checkpoint)]),
               *([] if data_dir is None else ["--data-dir", data_dir])]
    return {"guidance table": shlex.join(command)}
