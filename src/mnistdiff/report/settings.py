"""How many images each part of the report uses: --quick, --full, or any other choice from Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from mnistdiff.samplers.guidance import DEFAULT_GUIDANCE


class FidRow(NamedTuple):
    """One row of the FID table: steps None is the sampler's default (DDPM: every step), eta None the
    sampler's own noise (DDIM: 0, deterministic)."""

    label: str
    sampler: str
    steps: int | None
    eta: float | None = None


# The FID table's rows, the report's two first.
FID_ROWS = (
    FidRow("DDPM-1000", "ddpm", None),
    FidRow("DDIM-50", "ddim", 50),
    FidRow("DDIM-10", "ddim", 10),
    FidRow("DDIM-20", "ddim", 20),
    FidRow("DDIM-100", "ddim", 100),
    FidRow("DDIM-100, eta 1", "ddim", 100, eta=1.0),
    FidRow("DPM-Solver++ 10", "dpm-solver", 10),
    FidRow("DPM-Solver++ 20", "dpm-solver", 20),
    FidRow("DPM-Solver++ SDE 20", "dpm-solver-sde", 20),
    FidRow("DPM-Solver++ SDE 50 (default)", "dpm-solver-sde", 50),  # what `mnistdiff sample` draws with
)
HEADLINE = "DDIM-50"

# The student report's figures, shown beside ours: Inception FID, and one batch's sampling time.
REPORT_FID = {"DDPM-1000": 9.32, "DDIM-50": 11.61}
REPORT_TIMING = {"device": "NVIDIA GeForce RTX 2080 Ti", "short_device": "2080 Ti", "batch": 64, "ddpm_s": 43.0,
                 "ddim_s": 1.5}


@dataclass(frozen=True)
class Settings:
    """Image counts and seeds of one report. Every count is written on the page beside its numbers."""

    name: str
    fid_images: int  # per row of the FID table
    headline_images: int  # the DDIM-50 row
    ddpm_images: int  # the DDPM-1000 row, whose first images also make the sample grids
    timing_batch: int  # the batch timed with DDPM-1000 and DDIM-50
    timing_repeats: int  # DDIM runs around DDPM's one
    reconstruction_images: int
    reconstruction_steps: tuple[int, ...]
    merge_per_class: int  # image pairs per class pair in the merge study
    guidance_scales: tuple[float, ...] = (DEFAULT_GUIDANCE,)  # the conditional model's table, fid_images each
    digit_row: int = 10  # images per digit in the conditional model's grid
    student_steps: tuple[int, ...] = (1, 2, 4)  # the student's rows, fid_images each, up to its distilled steps
    trajectory_images: int = 16
    ddim_steps: int = 50  # inversion, merges and figures
    precision: str = "auto"  # the FID rows' sampling and the timing; inversion and merges run in fp32
    compile: bool = False  # the FID rows' sampling and the timing through torch.compile
    seed: int = 0
    batch_size: int = 64

    def images_of(self, label: str) -> int:
        """Images of one FID row."""
        return {"DDPM-1000": self.ddpm_images, HEADLINE: self.headline_images}.get(label, self.fid_images)


# Small counts, for a run of under 10 minutes on 2 CPU cores with the shipped model (the README says how long).
QUICK = Settings("quick", fid_images=256, headline_images=256, ddpm_images=32, timing_batch=16, timing_repeats=2,
                 reconstruction_images=16, reconstruction_steps=(10, 20, 50, 100), merge_per_class=2)
# The report's counts: 2048 images per row, 10,000 for the headline; hours on a CPU, minutes on a GPU.
FULL = Settings("full", fid_images=2048, headline_images=10_000, ddpm_images=2048, timing_batch=64, timing_repeats=4,
                reconstruction_images=100, reconstruction_steps=(10, 20, 50, 100, 200, 500, 1000),
                merge_per_class=20, guidance_scales=(1.0, 1.5, 2.0, 3.0, 5.0))
SIZES = {"quick": QUICK, "full": FULL}


def model_evaluations(s: Settings) -> dict[str, float]:
    """Rough cost of each part in model evaluations (image x step), for the job's ETA."""
    rows = {row.label: s.images_of(row.label) * (row.steps or 1000) for row in FID_ROWS}
    rows["DDPM-1000"] += s.ddpm_images * 50  # the DDIM grid from the same noise
    return {
        "forward": 2 * s.ddim_steps,
        "trajectory": s.trajectory_images * s.ddim_steps,
        **{f"fid {label}": cost for label, cost in rows.items()},
        "timing": s.timing_batch * (1000 + (s.timing_repeats + 1) * 50) * 1.5,  # small batches run slower
        "reconstruction": 2 * s.reconstruction_images * sum(s.reconstruction_steps),
        "merges": 3 * 11 * s.ddim_steps,
        "merge study": (10 * s.merge_per_class + 3 * 45 * s.merge_per_class) * s.ddim_steps,
        "fid curve": 1,
        "conditional": conditional_evaluations(s),
        # the rows, then the timing's turns: the teacher's DDIM-50 and each student count
        "student": (s.fid_images + s.timing_batch * (s.timing_repeats + 1)) * sum(s.student_steps)
                   + s.timing_batch * (s.timing_repeats + 1) * 50,
    }


def conditional_evaluations(s: Settings) -> int:
    """Model evaluations of the conditional model's section, DDIM-50 throughout: the grid at
    DEFAULT_GUIDANCE and fid_images at each scale; a scale other than 0 and 1 evaluates a doubled batch."""
    def doubled(scale: float) -> int:
        return 1 if scale in (0, 1) else 2

    images = 10 * s.digit_row * doubled(DEFAULT_GUIDANCE) + sum(s.fid_images * doubled(g) for g in s.guidance_scales)
    return images * 50
