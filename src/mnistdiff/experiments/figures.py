"""Figures of the experiments: merges, the forward process, interpolations, sampling trajectories."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from mnistdiff.data import to_uint8
from mnistdiff.diffusion import Schedule, q_sample
from mnistdiff.experiments.mixing import slerp
from mnistdiff.files import atomic_file
from mnistdiff.images import grid, save_figure
from mnistdiff.samplers import ddim_invert, sample_ddim


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_figure(rows: list[tuple[str, list[tuple[str, torch.Tensor]]]], out: str | Path, title: str = "") -> None:
    """A labelled table of images: each row is (row label, [(caption, image in [-1, 1] (C, H, W)), ...]),
    C = 1 (grey) or 3 (colour)."""
    plt = _pyplot()
    cols = max(len(cells) for _, cells in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols + 1.2, 1.45 * len(rows)), squeeze=False)
    for r, (label, cells) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            caption, image = cells[c]
            picture = to_uint8(image).permute(1, 2, 0).cpu().numpy()  # (H, W, C)
            ax.imshow(picture[..., 0] if picture.shape[2] == 1 else picture, cmap="gray", vmin=0, vmax=255)
            ax.set_title(caption, fontsize=7)
        axes[r][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out, dpi=120)
    plt.close(fig)


# Where Fig. 1 shows the forward process, with T - 1 added (forward_timesteps).
FORWARD_TIMESTEPS = (0, 50, 100, 200, 400, 600, 800)


def forward_timesteps(T: int) -> list[int]:
    """FORWARD_TIMESTEPS below T - 1, then T - 1: pure noise."""
    return [t for t in FORWARD_TIMESTEPS if t < T - 1] + [T - 1]


def forward_and_back(model, schedule: Schedule, x0: torch.Tensor, show: list[int], levels: list[int]) -> list:
    """Rows for one image x0 (1, C, H, W): x_t from q_sample at each t in `show`, and the deterministic
    DDIM path back from the inverted latent, caught at the DDIM levels nearest to `show`."""
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)).to(x0.device)
    forward = [(f"t = {t}", q_sample(schedule, x0, torch.tensor([t], device=x0.device), eps)[0]) for t in show]
    wanted = {min(levels[:-1], key=lambda s: abs(s - t)) for t in show}
    latent = ddim_invert(model, x0, schedule, levels)
    caught = {levels[0]: latent[0]}
    sample_ddim(model, latent, schedule, levels,
                callback=lambda t, x, x0_pred: caught.update({t: x[0]}) if t in wanted or t == -1 else None)
    back = [(f"t = {t}", caught[t]) for t in sorted(wanted, reverse=True)]
    back.append(("x0 (decoded)", caught[-1]))
    return [("forward q(x_t | x0)", [("x0", x0[0])] + forward), ("DDIM back from x_T", back)]


def save_gif(frames: list[torch.Tensor], out: str | Path, ms: int = 120, scale: int = 3) -> None:
    """frames: uint8 pictures (H, W) as from images.grid; the last frame holds twice as long."""
    pics = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
    durations = [ms] * (len(pics) - 1) + [ms * 10]
    with atomic_file(out) as f:
        pics[0].save(f, format="GIF", save_all=True, append_images=pics[1:], duration=durations, loop=0)


def interpolation(model, schedule: Schedule, a: torch.Tensor, b: torch.Tensor, levels: list[int],
                  frames: int = 10) -> torch.Tensor:
    """Decoded slerp path between the latents of a and b (1, C, H, W): uint8 (frames, C, H, W)."""
    za, zb = ddim_invert(model, torch.cat([a, b]), schedule, levels).chunk(2)
    path = torch.cat([slerp(za, zb, i / (frames - 1)) for i in range(frames)])
    return to_uint8(sample_ddim(model, path, schedule, levels))  # no clipping: see merge()


def trajectory(model, schedule: Schedule, x_T: torch.Tensor, levels: list[int], *, columns: int = 8,
               rows: int = 4) -> tuple[list, list]:
    """A DDIM run from x_T (B, C, H, W) to digits: grid pictures of the batch at every step (for a GIF),
    and panel rows of x_t and the predicted x0 of the first `rows` images at `columns` of the steps."""
    frames, seen = [grid(to_uint8(x_T))], []

    def record(t, x, x0_pred):
        frames.append(grid(to_uint8(x)))
        seen.append((levels[len(seen)], t, x[:rows], x0_pred[:rows]))  # (from, to, x, x0 predicted at from)

    sample_ddim(model, x_T, schedule, levels, clip_x0=True, callback=record)
    picked = [seen[round(i * (len(seen) - 1) / max(columns - 1, 1))] for i in range(min(columns, len(seen)))]
    panel = []
    for k in range(min(rows, len(x_T))):
        panel.append((f"#{k} x_t", [(f"t = {t}" if t >= 0 else "clean", x[k]) for _, t, x, _ in picked]))
        panel.append((f"#{k} predicted x0", [(f"at t = {s}", x0[k]) for s, _, _, x0 in picked]))
    return frames, panel


def merge_rows(labels: list[str], a: torch.Tensor, b: torch.Tensor, result: dict, weights: list[float],
               rule: str) -> list:
    """The report's figures 3 and 4 for one pair: inputs, reconstructions, latent mix, pixel mix."""
    return [
        ("inputs / recon.", [(labels[0], a[0]), (labels[1], b[0]), ("recon. A", result["recon_a"][0]),
                             ("recon. B", result["recon_b"][0])]),
        (f"latent mix ({rule})", [(f"w = {w:g}", m[0]) for w, m in zip(weights, result["latent_mix"])]),
        ("pixel mix", [(f"w = {w:g}", m[0]) for w, m in zip(weights, result["pixel_mix"])]),
    ]



def merge_heatmaps(study: dict, out: str | Path) -> None:
    """One panel per method: cell (A, B) shows the most common class of the merge and, as colour, its share."""
    from mnistdiff.experiments.merge_study import most_common

    plt = _pyplot()
    methods = study["methods"]
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods) + 1, 3.6), squeeze=False,
                             layout="constrained")
    for ax, (name, m) in zip(axes[0], methods.items()):
        share = torch.full((10, 10), float("nan"))
        for pair, counts in m["counts"].items():
            a, b = map(int, pair.split("+"))
            top, share[a, b] = most_common(counts)
            ax.text(b, a, str(top), ha="center", va="center", fontsize=7,
                    color="red" if top not in (a, b) else "black")
        image = ax.imshow(share.numpy(), vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("class B")
        if ax is axes[0][0]:
            ax.set_ylabel("class A")
        ax.set_title(f"{name}: most common result", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="share of merges (red: a third digit)")
    save_figure(fig, out, dpi=120)
    plt.close(fig)
