"""One command for the whole report: figures, FID and timing tables, inversion and merges, on one page."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from mnistdiff.report.settings import FID_ROWS, FULL, PRESETS, QUICK, Settings, model_evaluations

__all__ = ["FULL", "PRESETS", "QUICK", "Settings", "build_report"]


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
                 progress: bool = True, command: str | None = None) -> dict:
    """Compute every part (or reuse it from OUT/cache), then write OUT/index.html, summary.json and
    report.md. Returns the summary: the page's key numbers and provenance."""
    from mnistdiff.loading import find, load_checkpoint
    from mnistdiff.precision import pick_device, pick_precision
    from mnistdiff.report import page, parts
    from mnistdiff.report.cache import Cache, model_checksum
    from mnistdiff.runtime import prepare

    from mnistdiff.provenance import git_commit

    started, commit = time.perf_counter(), git_commit()  # the code that runs, not a later checkout
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder = find(checkpoint)
    target = pick_device(device)
    settings = replace(settings, precision=pick_precision(settings.precision, target.type))  # the page names what ran
    model, schedule, config = load_checkpoint(checkpoint)
    # One compiled Runner serves every FID row (generate reuses a Runner of the same settings).
    runner = prepare(model.to(target), precision=settings.precision, compile=settings.compile)
    ctx = parts.Context(model=runner, cpu_model=load_checkpoint(checkpoint)[0], schedule=schedule,
                        config=config, settings=settings, out=out, data_dir=None if data_dir is None else str(data_dir))
    checksum = model_checksum(folder)
    cache = Cache(out, {"model": checksum, "settings": asdict(settings), "data_dir": ctx.data_dir}, force=force)
    fid_csv = parts.find_fid_csv(checkpoint, folder)
    jobs = {
        "forward": lambda: parts.forward(ctx),
        "trajectory": lambda: parts.trajectory(ctx),
        **{f"fid {row.label}": (lambda r=row: parts.fid_row(ctx, r)) for row in FID_ROWS},
        "timing": lambda: parts.timing(ctx),
        "reconstruction": lambda: parts.reconstruction(ctx),
        "merges": lambda: parts.merges(ctx),
        "merge study": lambda: parts.merge_study(ctx),
        "fid curve": lambda: parts.fid_curve(ctx, fid_csv),
    }
    costs = model_evaluations(settings)
    job = JobProgress(costs, enabled=progress)
    results = {}
    for name, compute in jobs.items():
        job.begin(name)
        # Sampling and timing depend on the device (its noise differs from the CPU's); the rest runs on the CPU.
        key = {"device": target.type} if name.startswith("fid ") or name == "timing" else {}
        if name == "fid curve":
            key["fid_csv"] = fid_csv.read_text() if fid_csv else None
        results[name], cached = cache.run(name, key, compute)
        job.end(name, cached)
    provenance = page.provenance(settings, checkpoint, folder, checksum, target, command, ctx.data_dir,
                                 results["forward"]["test_index"], results["merges"]) | {"commit": commit}
    return page.write(out, results, settings, provenance, seconds=time.perf_counter() - started)
