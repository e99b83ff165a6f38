"""The DDIM paper's Table 1 for one model: FID over eta and the number of steps, plus DDPM."""

from __future__ import annotations

import time

from tqdm.auto import tqdm

from mnistdiff import markdown
from mnistdiff.diffusion import Schedule
from mnistdiff.evaluation.report import fid_test
from mnistdiff.generation import generate

ETAS = (0.0, 0.5, 1.0)
STEPS = (10, 20, 50, 100, 1000)


def eval_grid(model, schedule: Schedule, *, n: int, dataset: str = "mnist", etas=ETAS, steps=STEPS,
              ddpm: bool = True, seed: int = 0, batch_size: int = 64, precision: str = "fp32",
              compile: bool = False, clip_x0: bool = True, progress: bool = True) -> list[dict]:
    """One row per setting: sampler, eta, steps, FID against the test statistics, seconds taken."""
    settings = [("ddim", eta, s) for eta in etas for s in steps]
    if ddpm:
        settings.append(("ddpm", None, schedule.T))
    common = {"n": n, "dataset": dataset, "seed": seed, "batch_size": batch_size, "precision": precision,
              "compile": compile, "clip_x0": clip_x0}
    return [{"sampler": sampler, "eta": eta, "steps": s, "n": n, "dataset": dataset, "precision": precision,
             "clip_x0": clip_x0, **_score(model, schedule, sampler=sampler, steps=s, **common,
                                          **({} if eta is None else {"eta": eta}))}
            for sampler, eta, s in tqdm(settings, desc="eval-grid", disable=not progress)]


def _score(model, schedule: Schedule, *, n: int, dataset: str, **sampling) -> dict:
    """FID against the test statistics of n samples, and the seconds the sampling took."""
    t0 = time.perf_counter()
    images = generate(model, schedule, n, **sampling)
    seconds = time.perf_counter() - t0
    return {"fid_test": fid_test(images, dataset), "seconds": seconds}


def to_markdown(rows: list[dict]) -> str:
    """Rows of eta (and DDPM) against columns of steps, as in Table 1 of Song et al. 2021."""
    steps = sorted({r["steps"] for r in rows if r["sampler"] == "ddim"})
    n, dataset = rows[0]["n"], rows[0]["dataset"]
    title = (f"FID against the {dataset} test statistics (classifier features), {n} images per cell, "
             f"x0 {_clipping(rows)}")
    cells = []
    for eta in sorted({r["eta"] for r in rows if r["sampler"] == "ddim"}):
        fids = {r["steps"]: r["fid_test"] for r in rows if r["sampler"] == "ddim" and r["eta"] == eta}
        cells.append([f"DDIM, eta = {eta:g}"] + [f"{fids[s]:.2f}" for s in steps])
    cells += [[f"DDPM, {r['steps']} steps", f"{r['fid_test']:.2f}"] + [""] * (len(steps) - 1)
              for r in rows if r["sampler"] == "ddpm"]
    return f"{title}\n\n" + markdown.table(["sampler"] + [f"S = {s}" for s in steps], cells)


NFES = (5, 10, 20, 50, 100)
# (sampler, spacing, t_end): DDIM on the official code's grid, DPM-Solver++ on two of Lu et al.'s.
CURVES = (("ddim", "uniform", None), ("dpm-solver", "logsnr", None), ("dpm-solver", "uniform", None))


def curve_label(sampler: str, spacing: str, t_end: int | None = None) -> str:
    return f"{sampler}, {spacing}" + (f", t_end {t_end}" if t_end is not None else "")


def curve_key(row: dict) -> tuple:
    """(sampler, spacing, t_end) of a row; rows written before t_end existed have None."""
    return row["sampler"], row["spacing"], row.get("t_end")


def nfe_curve(model, schedule: Schedule, *, n: int, dataset: str = "mnist", nfes=NFES, curves=CURVES,
              seed: int = 0, batch_size: int = 64, precision: str = "fp32", compile: bool = False,
              clip_x0: bool = True, progress: bool = True) -> list[dict]:
    """FID against the number of model evaluations, one row per (sampler, spacing, t_end, NFE).

    A curve is (sampler, spacing) or (sampler, spacing, t_end); t_end None is 0, as in samplers.levels.
    """
    curves = [(*curve, None)[:3] for curve in curves]
    settings = [(*curve, nfe) for curve in curves for nfe in nfes]
    common = {"n": n, "dataset": dataset, "seed": seed, "batch_size": batch_size, "precision": precision,
              "compile": compile, "clip_x0": clip_x0}
    return [{"sampler": sampler, "spacing": spacing, "t_end": t_end, "nfe": nfe, "n": n, "dataset": dataset,
             "precision": precision, "clip_x0": clip_x0,
             **_score(model, schedule, sampler=sampler, steps=nfe, spacing=spacing, t_end=t_end, **common)}
            for sampler, spacing, t_end, nfe in tqdm(settings, desc="nfe-curve", disable=not progress)]


def nfe_markdown(rows: list[dict]) -> str:
    """Rows of samplers against columns of model evaluations."""
    nfes = sorted({r["nfe"] for r in rows})
    curves = list(dict.fromkeys(curve_key(r) for r in rows))
    title = (f"FID against the {rows[0]['dataset']} test statistics (classifier features), {rows[0]['n']} images "
             f"per cell, x0 {_clipping(rows)}, model in {rows[0]['precision']}")
    cells = []
    for curve in curves:
        fids = {r["nfe"]: r["fid_test"] for r in rows if curve_key(r) == curve}
        cells.append([curve_label(*curve)] + [f"{fids[k]:.3f}" if k in fids else "" for k in nfes])
    return f"{title}\n\n" + markdown.table(["sampler, spacing, end"] + [f"NFE = {k}" for k in nfes], cells)


def _clipping(rows: list[dict]) -> str:
    return "clipped" if rows[0].get("clip_x0", True) else "not clipped"
