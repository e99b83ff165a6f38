"""Plots of evaluation results."""

from __future__ import annotations

from pathlib import Path

from mnistdiff.files import read_csv
from mnistdiff.images import save_figure


def plot_fid_curve(fid_csv: str | Path, out: str | Path) -> None:
    """FID of the periodic checks against minutes of training, from a run's fid.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, rows = read_csv(fid_csv)
    if not rows:
        raise ValueError(f"{fid_csv} holds no FID checks")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    # One line per check size: FID is biased upwards at small N, so sizes must not share a line.
    for images in dict.fromkeys(r["images"] for r in rows):
        part = [r for r in rows if r["images"] == images]
        minutes = [float(r["elapsed_s"]) / 60 for r in part]
        fids = [float(r["fid_test"]) for r in part]
        ax.plot(minutes, fids, marker="o", label=f"{images} DDIM-{part[0]['ddim_steps']} samples")
        for m, f, r in zip(minutes, fids, part):
            ax.annotate(f"{int(r['step']) // 1000}k", (m, f), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("minutes of training (time in optimizer steps)")
    ax.set_ylabel("FID vs test statistics")
    ax.legend()
    ax.set_title("Time to quality (labels: optimizer steps)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def plot_nfe_curve(rows: list[dict], out: str | Path, floor: float | None = None) -> None:
    """FID against model evaluations, one line per (sampler, spacing, t_end), log-log."""
    from mnistdiff.evaluation.grid import curve_key, curve_label
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for curve in dict.fromkeys(curve_key(r) for r in rows):
        points = sorted((r["nfe"], r["fid_test"]) for r in rows if curve_key(r) == curve)
        ax.plot(*zip(*points), marker="o", label=curve_label(*curve))
    if floor is not None:
        ax.axhline(floor, color="gray", linestyle="--", label="real images, same count")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model evaluations (NFE)")
    ax.set_ylabel(f"FID vs test statistics ({rows[0]['n']} images)")
    ax.set_title("Quality per step")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
