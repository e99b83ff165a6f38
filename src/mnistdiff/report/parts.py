"""The parts of the report, each a function of the model that writes its figures into the report's
folder and returns its numbers (JSON-ready, with "files": what it wrote, relative to the folder)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mnistdiff import data
from mnistdiff.data import to_model_range
from mnistdiff.diffusion import Schedule
from mnistdiff.experiments.inputs import fit
from mnistdiff.files import atomic_write, read_csv
from mnistdiff.images import DIGITS, grid, image_shape, save_png
from mnistdiff.provenance import device_name
from mnistdiff.report.settings import FidRow, Settings


@dataclass
class Context:
    """What every part needs: the model on the chosen device (for sampling and timing) and on the CPU
    (for the experiments, whose inputs and classifier live there), the settings and the folder."""

    model: torch.nn.Module
    cpu_model: torch.nn.Module
    schedule: Schedule
    config: dict
    settings: Settings
    out: Path
    data_dir: str | None = None
    _test: tuple | None = field(default=None, repr=False)
    _floors: dict = field(default_factory=dict, repr=False)

    @property
    def dataset(self) -> str:
        return self.config["dataset"]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's images; test digits are fitted to it (a diffusers model's may differ)."""
        return image_shape(self.config)

    def skipped(self, what: str) -> str | None:
        """Why `what` is left out (the classifier reads 1x28x28 digits only), or None when it runs."""
        if self.shape == DIGITS:
            return None
        return f"{what} left out: the shipped MNIST classifier reads 1x28x28 digits, this model makes " \
               f"{'x'.join(map(str, self.shape))} images"

    def test_images(self, start: int, stop: int) -> torch.Tensor:
        """Test images start..stop in [-1, 1], in the model's shape."""
        return to_model_range(fit(self.test_set()[0][start:stop], self.shape))

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._test is None:
            self._test = data.load(self.dataset, "test", self.data_dir)
        return self._test

    def floors(self, n: int) -> list[float]:
        """The real-data floor's draws at n images, computed once for the FID rows of that count."""
        from mnistdiff.evaluation.report import real_floors

        if n not in self._floors:
            self._floors[n] = real_floors(n, self.dataset, self.data_dir, self.settings.seed)
        return self._floors[n]

    def first_of_class(self, digit: int) -> int:
        """Index of the first test image of a class (test #1 is a 2 and #8 a 5 in MNIST)."""
        labels = self.test_set()[1]
        found = torch.nonzero(labels == digit).flatten()
        if not len(found):
            raise ValueError(f"the test set holds no image of class {digit}")
        return int(found[0])

    def ddim_levels(self) -> list[int]:
        """The DDIM grid the inversion experiments walk, with settings.ddim_steps steps."""
        from mnistdiff.samplers import levels

        return levels(self.settings.ddim_steps, self.schedule)


def forward(ctx: Context) -> dict:
    """Fig. 1: a digit's forward process, and the deterministic DDIM path back from its latent."""
    from mnistdiff.experiments import figures

    index = ctx.first_of_class(2)
    x0 = ctx.test_images(index, index + 1)
    show = figures.forward_timesteps(ctx.schedule.T)
    rows = figures.forward_and_back(ctx.cpu_model, ctx.schedule, x0, show, ctx.ddim_levels())
    figures.panel_figure(rows, ctx.out / "forward.png",
                         title=f"test #{index}: forward process and DDIM-{ctx.settings.ddim_steps} path back")
    return {"test_index": index, "files": ["forward.png"]}


def trajectory(ctx: Context) -> dict:
    """A denoising GIF: a batch at every DDIM step, from noise to digits."""
    from mnistdiff.experiments import figures

    s = ctx.settings
    x_T = torch.randn((s.trajectory_images, *ctx.shape), generator=torch.Generator().manual_seed(s.seed))
    frames, _ = figures.trajectory(ctx.cpu_model, ctx.schedule, x_T, ctx.ddim_levels())
    figures.save_gif(frames, ctx.out / "denoising.gif", ms=80)
    save_png(ctx.out / "denoising-last.png", frames[-1], scale=3)
    return {"images": s.trajectory_images, "frames": len(frames), "files": ["denoising.gif", "denoising-last.png"]}


def fid_row(ctx: Context, spec: FidRow) -> dict:
    """One row of the FID table: sample, then FID, the real-data floor at the same count, precision,
    recall and class shares. The DDPM row also draws DDIM-50 from the same noise for Fig. 2."""
    from mnistdiff.evaluation import evaluate
    from mnistdiff.generation import generate
    from mnistdiff.samplers import default_steps

    label, sampler, steps, eta = spec
    s = ctx.settings
    skipped = ctx.skipped("FID, precision, recall and class shares")
    if skipped and sampler != "ddpm":  # the DDPM row still draws Fig. 2
        return {"label": label, "skipped": skipped, "files": []}
    n = min(s.images_of(label), 64) if skipped else s.images_of(label)
    common = {"seed": s.seed, "batch_size": s.batch_size, "precision": s.precision, "compile": s.compile,
              "image_shape": ctx.shape, "progress": True}
    t0 = time.perf_counter()
    steps = default_steps(sampler, ctx.schedule.T) if steps is None else steps
    options = {} if eta is None else {"eta": eta}
    images = generate(ctx.model, ctx.schedule, n, sampler=sampler, steps=steps, **options, **common)
    seconds = time.perf_counter() - t0
    shown_label = f"DDPM-{steps}" if sampler == "ddpm" else label  # the test model's T is not 1000
    row = {"label": shown_label, "sampler": sampler, "steps": steps, "seconds": seconds, "precision": s.precision,
           **({"skipped": skipped} if skipped
              else evaluate(images, ctx.dataset, ctx.data_dir, seed=s.seed, floors=ctx.floors(n))),
           "files": []}
    if sampler == "ddpm":
        shown = min(n, 64)
        ddim = generate(ctx.model, ctx.schedule, shown, sampler="ddim", steps=50, **common)
        save_png(ctx.out / "samples-ddpm.png", grid(images[:shown]), scale=3)
        save_png(ctx.out / "samples-ddim.png", grid(ddim), scale=3)
        row["grid_images"] = shown
        row["files"] = ["samples-ddpm.png", "samples-ddim.png"]
    return row


def timing(ctx: Context) -> dict:
    """Seconds for one batch with DDPM over all T steps and with DDIM-50, on the report's device."""
    from mnistdiff.bench import bench_sampling

    s = ctx.settings
    # The bare model: a compiled Runner pads every batch to the largest it has seen, which would time
    # a smaller batch as a larger one; bench_sampling prepares (and builds) its own.
    result = bench_sampling(getattr(ctx.model, "model", ctx.model), ctx.schedule, ddim_steps=50,
                            batch_size=s.timing_batch, seed=s.seed,
                            precision=s.precision, ddim_repeats=s.timing_repeats, compile=s.compile)
    device = next(ctx.model.parameters()).device
    return {**result, "device_name": device_name(device), "files": []}


def reconstruction(ctx: Context) -> dict:
    """Invert-then-decode error of test images by number of DDIM steps (Table 2 of the DDIM paper)."""
    from mnistdiff.experiments.reconstruction import reconstruction_errors, to_markdown

    s = ctx.settings
    x0 = ctx.test_images(0, s.reconstruction_images)
    rows = reconstruction_errors(ctx.cpu_model, ctx.schedule, x0, s.reconstruction_steps)
    atomic_write(ctx.out / "reconstruction.md", to_markdown(rows).encode())
    return {"rows": rows, "files": ["reconstruction.md"]}


def merges(ctx: Context) -> dict:
    """Figs. 3 and 4: the first test 2 and 5 inverted, mixed by each rule, decoded; beside the pixel mix."""
    from mnistdiff.experiments import RULES, figures, merge
    from mnistdiff.experiments.merge import WEIGHTS

    a_index, b_index = ctx.first_of_class(2), ctx.first_of_class(5)
    a, b = (ctx.test_images(i, i + 1) for i in (a_index, b_index))
    labels = [f"test #{a_index} (2)", f"test #{b_index} (5)"]
    files = []
    for rule in RULES:
        result = merge(ctx.cpu_model, ctx.schedule, a, b, list(WEIGHTS), rule=rule, levels=ctx.ddim_levels())
        rows = figures.merge_rows(labels, a, b, result, list(WEIGHTS), rule)
        name = f"merge-2-5-{rule}.png"
        figures.panel_figure(rows, ctx.out / name, title=f"2 + 5, {rule} mix, DDIM-{ctx.settings.ddim_steps} inversion")
        files.append(name)
    return {"a": a_index, "b": b_index, "weights": list(WEIGHTS), "rules": list(RULES), "files": files}


def merge_study(ctx: Context) -> dict:
    """What 50/50 merges of every pair of digit classes decode to, by mixing rule, by the classifier."""
    from mnistdiff.evaluation import load_classifier, load_reference
    from mnistdiff.experiments import figures
    from mnistdiff.experiments.merge_study import merge_study as study_of, to_markdown

    if ctx.skipped("the merge study"):
        return {"skipped": ctx.skipped("the merge study"), "files": []}
    images, labels = ctx.test_set()
    classifier, _ = load_classifier(ctx.dataset)
    study = study_of(ctx.cpu_model, ctx.schedule, images, labels, classifier, load_reference(ctx.dataset)["test"],
                     ctx.ddim_levels(), per_class=ctx.settings.merge_per_class, seed=ctx.settings.seed)
    figures.merge_heatmaps(study, ctx.out / "merge-study.png")
    atomic_write(ctx.out / "merge-study.md", to_markdown(study).encode())
    return {"study": study, "files": ["merge-study.png", "merge-study.md"]}


def find_fid_csv(checkpoint: str | Path | None, checkpoint_folder: Path) -> Path | None:
    """The fid.csv of an exported model, of a run folder, or of the run a checkpoint folder is in."""
    candidates = [checkpoint_folder, checkpoint_folder.parent.parent]
    if checkpoint is not None:
        candidates.insert(0, Path(checkpoint))
    return next((c / "fid.csv" for c in candidates if (c / "fid.csv").is_file()), None)


def fid_curve(ctx: Context, fid_csv: Path | None) -> dict:
    """FID of the training run's periodic checks against minutes of training, when it kept them."""
    from mnistdiff.evaluation.plots import plot_fid_curve

    if fid_csv is None:
        return {"available": False, "files": []}
    _, rows = read_csv(fid_csv)
    if not rows:
        return {"available": False, "files": []}
    plot_fid_curve(fid_csv, ctx.out / "fid-curve.png")
    atomic_write(ctx.out / "fid.csv", Path(fid_csv).read_bytes())
    return {"available": True, "rows": rows, "covers": fid_coverage(Path(fid_csv), rows),
            "files": ["fid-curve.png", "fid.csv"]}


def fid_coverage(fid_csv: Path, rows: list[dict]) -> dict:
    """What part of the model's training the FID checks cover: their first and last step and minutes,
    beside the steps and minutes of the whole training (log.csv beside fid.csv) and its stages (record.json)."""
    import json

    covers = {"first_step": int(rows[0]["step"]), "last_step": int(rows[-1]["step"]),
              "minutes": float(rows[-1]["elapsed_s"]) / 60, "stages": 1}
    log, record = fid_csv.parent / "log.csv", fid_csv.parent / "record.json"
    if log.is_file():
        last = read_csv(log)[1][-1:]
        if last:
            covers |= {"steps_in_all": int(last[0]["step"]), "minutes_in_all": float(last[0]["elapsed_s"]) / 60}
    if record.is_file():
        stage = json.loads(record.read_text())
        while stage.get("base"):
            covers["stages"] += 1
            stage = stage["base"]
    return covers
