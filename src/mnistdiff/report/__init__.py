"""One command for the whole report: figures, FID and timing tables, inversion and merges, on one page."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mnistdiff.files import NoSpace
from mnistdiff.report.settings import FID_ROWS, FULL, QUICK, SIZES, Settings, model_evaluations

if TYPE_CHECKING:
    from mnistdiff.report import parts

__all__ = ["FULL", "QUICK", "SIZES", "Settings", "build_report"]


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class JobProgress:
    """"part k of n" lines on stderr, with the time so far and an ETA weighted by each part's cost."""

    def __init__(self, costs: dict[str, float], enabled: bool = True):
        self.costs, self.enabled = costs, enabled
        self.total = sum(costs.values())
        self.done = 0.0  # cost of the parts computed in this process (cached ones cost nothing)
        self.skipped = 0.0
        self.start = time.perf_counter()
        self.k = 0

    def begin(self, name: str) -> None:
        self.k += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        left = self.total - self.done - self.skipped
        # The first parts are small and mostly overhead: an ETA from them alone would be far off.
        eta = f", about {_minutes(elapsed / self.done * left)} left" if self.done >= 0.02 * self.total else ""
        print(f"[part {self.k} of {len(self.costs)}] {name} ({_minutes(elapsed)} so far{eta})", file=sys.stderr, flush=True)

    def end(self, name: str, cached: bool) -> None:
        if cached:
            self.skipped += self.costs[name]
            if self.enabled:
                print("  reused from the cache", file=sys.stderr, flush=True)
        else:
            self.done += self.costs[name]


def build_report(out: str | Path = "report", checkpoint: str | Path | None = None, settings: Settings = QUICK, *,
                 device: str = "auto", data_dir: str | Path | None = None, force: bool = False,
                 progress: bool = True, command: str | None = None,
                 conditional_checkpoint: str | Path | None = "conditional",
                 student_checkpoint: str | Path | None = "fast") -> dict:
    """Compute every part (or reuse it from OUT/cache), then write OUT/index.html, summary.json and
    report.md. Returns the summary: the page's key numbers and provenance.

    conditional_checkpoint: the class-conditional model of the section "Draw me a 7" (default: the
    shipped one, "conditional"); None, or no shipped model, leaves a one-line note there instead.
    student_checkpoint: the distilled student of the section "Fast" (default: the shipped one, "fast"),
    likewise."""
    from mnistdiff.external.diffusers import is_diffusers_folder
    from mnistdiff.loading import find
    from mnistdiff.precision import pick_device, pick_precision
    from mnistdiff.provenance import git_commit
    from mnistdiff.report import conditional, page, parts, student
    from mnistdiff.report.cache import Cache, model_checksum

    started, commit = time.perf_counter(), git_commit()  # the code that runs, not a later checkout
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(checkpoint) if is_diffusers_folder(checkpoint) else find(checkpoint)
    target = pick_device(device)
    settings = replace(settings, precision=pick_precision(settings.precision, target.type))  # the page names what ran
    ctx = _context(out, checkpoint, settings, target, data_dir)
    checksum = model_checksum(folder)
    cache = Cache(out, {"model": checksum, "settings": asdict(settings), "data_dir": ctx.data_dir}, force=force)
    fid_csv = parts.find_fid_csv(checkpoint, folder)
    cond = conditional.load(conditional_checkpoint, target, settings, ctx.dataset)
    fast = student.load(student_checkpoint, target, ctx.dataset, shipped_teacher=checkpoint is None)
    jobs = _jobs(ctx, fid_csv, cond, fast)
    keys = {name: _part_key(name, target.type, fid_csv) for name in jobs}
    keys["conditional"] |= {"checksum": cond.checksum, "note": cond.note}
    keys["student"] |= {"checksum": fast.checksum, "note": fast.note}
    results = _compute(jobs, keys, cache, model_evaluations(settings), progress)
    provenance = page.provenance(settings, checkpoint=checkpoint, folder=folder, checksum=checksum, device=target,
                                 command=command, data_dir=ctx.data_dir, results=results, commit=commit,
                                 conditional_checkpoint=conditional_checkpoint if cond.checksum else None,
                                 student_checkpoint=student_checkpoint if fast.checksum else None)
    return page.write(out, results, settings, provenance, seconds=time.perf_counter() - started, parts=cache.times)


def _context(out: Path, checkpoint, settings: Settings, target, data_dir) -> parts.Context:
    """The model on the report's device, behind one compiled Runner that serves every FID row (generate
    reuses a Runner of the same settings), and a second copy on the CPU for the experiments."""
    from mnistdiff import load_checkpoint
    from mnistdiff.report import parts
    from mnistdiff.report.data_source import data_dir_for
    from mnistdiff.runtime import prepare
    from mnistdiff.samplers.common import distilled_steps

    model, schedule, config = load_checkpoint(checkpoint)
    if distilled_steps(model):
        raise ValueError(f"--checkpoint {checkpoint} is a distilled student: the report samples its model over "
                         "all T steps and inverts images with it; give the student's teacher as --checkpoint and "
                         "the student as --student-checkpoint")
    runner = prepare(model.to(target), precision=settings.precision, compile=settings.compile)
    return parts.Context(model=runner, cpu_model=load_checkpoint(checkpoint)[0], schedule=schedule, config=config,
                         settings=settings, out=out, data_dir=data_dir_for(settings, config["dataset"], data_dir))


def _jobs(ctx, fid_csv: Path | None, cond, fast) -> dict[str, Callable[[], dict]]:
    """Every part of the page, by name, in the order the page shows them."""
    from mnistdiff.report import conditional, parts, student

    return {
        "forward": lambda: parts.forward(ctx),
        "trajectory": lambda: parts.trajectory(ctx),
        **{f"fid {row.label}": (lambda r=row: parts.fid_row(ctx, r)) for row in FID_ROWS},
        "timing": lambda: parts.timing(ctx),
        "student": lambda: student.section(ctx, fast),
        "conditional": lambda: conditional.section(ctx, cond),
        "reconstruction": lambda: parts.reconstruction(ctx),
        "merges": lambda: parts.merges(ctx),
        "merge study": lambda: parts.merge_study(ctx),
        "fid curve": lambda: parts.fid_curve(ctx, fid_csv),
    }


def _part_key(name: str, device: str, fid_csv: Path | None) -> dict:
    """What a cached part depends on beyond the model, the settings and the data."""
    from mnistdiff.evaluation.report import FLOOR_DRAWS
    from mnistdiff.samplers import default_spacing

    # Sampling and timing depend on the device (its noise differs from the CPU's); the rest runs on the CPU.
    sampled = name.startswith("fid ") or name in ("conditional", "student")
    key = {"device": device} if sampled or name == "timing" else {}
    if sampled:
        key["floor_draws"] = FLOOR_DRAWS  # rows kept before the floor had its spread lack it
    row = next((r for r in FID_ROWS if name == f"fid {r.label}"), None)
    if row is not None:
        key["spacing"] = default_spacing(row.sampler)  # a sampler's own grid may change between versions
    if name == "fid curve":
        key["fid_csv"] = fid_csv.read_text() if fid_csv else None
    return key


def _compute(jobs: dict[str, Callable[[], dict]], keys: dict[str, dict], cache, costs: dict[str, float],
             progress: bool) -> dict:
    """Each job's result, from the cache under its key or computed, with a progress line per part."""
    job = JobProgress(costs, enabled=progress)
    results = {}
    for name, compute in jobs.items():
        job.begin(name)
        try:
            results[name], cached = cache.run(name, keys[name], compute)
        except NoSpace as err:
            raise NoSpace(err.errno, f"{err.strerror}; the parts finished before it stay in {cache.folder}: "
                                     "free some space and run the report again") from err
        job.end(name, cached)
    return results
