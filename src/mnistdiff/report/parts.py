"""The parts of the report, each a function of the model that writes its figures into the report's
folder and returns its numbers (JSON-ready, with "files": what it wrote, relative to the folder)."""

from __future__ import annotations

import csv
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mnistdiff import data
from mnistdiff.data import to_model_range
from mnistdiff.diffusion import Schedule
from mnistdiff.images import grid, save_png
from mnistdiff.report.settings import FidRow, Settings

MERGE_WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)
# The student report's figures, shown beside ours.
REPORT_FID = {"DDPM-1000": 9.32, "DDIM-50": 11.61}
REPORT_TIMING = {"device": "NVIDIA GeForce RTX 2080 Ti", "batch": 64, "ddpm_s": 43.0, "ddim_s": 1.5}


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
    x0 = to_model_range(ctx.test_set()[0][index : index + 1])
    T = ctx.schedule.T
    show = [t for t in (0, 50, 100, 200, 400, 600, 800) if t < T - 1] + [T - 1]
    rows = figures.forward_and_back(ctx.cpu_model, ctx.schedule, x0, show, ctx.ddim_levels())
    figures.panel_figure(rows, ctx.out / "forward.png",
                         title=f"test #{index}: forward process and DDIM-{ctx.settings.ddim_steps} path back")
    return {"test_index": index, "files": ["forward.png"]}


def trajectory(ctx: Context) -> dict:
    """A denoising GIF: a batch at every DDIM step, from noise to digits."""
    from mnistdiff.experiments import figures

    s = ctx.settings
    x_T = torch.randn((s.trajectory_images, 1, 28, 28), generator=torch.Generator().manual_seed(s.seed))
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
    n = s.images_of(label)
    common = {"seed": s.seed, "batch_size": s.batch_size, "precision": s.precision, "compile": s.compile,
              "progress": True}
    t0 = time.perf_counter()
    steps = default_steps(sampler, ctx.schedule.T) if steps is None else steps
    options = {} if eta is None else {"eta": eta}
    images = generate(ctx.model, ctx.schedule, n, sampler=sampler, steps=steps, **options, **common)
    seconds = time.perf_counter() - t0
    shown_label = f"DDPM-{steps}" if sampler == "ddpm" else label  # the test model's T is not 1000
    row = {"label": shown_label, "sampler": sampler, "steps": steps, "seconds": seconds, "precision": s.precision,
           **evaluate(images, ctx.dataset, ctx.data_dir, seed=s.seed, floors=ctx.floors(n)), "files": []}
    if sampler == "ddpm":
        shown = min(n, 64)
        ddim = generate(ctx.model, ctx.schedule, shown, sampler="ddim", steps=50, **common)
        save_png(ctx.out / "samples-ddpm.png", grid(images[:shown]), scale=3)
        save_png(ctx.out / "samples-ddim.png", grid(ddim), scale=3)
        row["grid_images"] = shown
        row["files"] = ["samples-ddpm.png", "samples-ddim.png"]
    return row


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    x0 = to_model_range(ctx.test_set()[0][: s.reconstruction_images])
    rows = reconstruction_errors(ctx.cpu_model, ctx.schedule, x0, s.reconstruction_steps)
    (ctx.out / "reconstruction.md").write_text(to_markdown(rows))
    return {"rows": rows, "files": ["reconstruction.md"]}


def merges(ctx: Context) -> dict:
    """Figs. 3 and 4: the first test 2 and 5 inverted, mixed by each rule, decoded; beside the pixel mix."""
    from mnistdiff.experiments import RULES, figures, merge

    test_images, _ = ctx.test_set()
    a_index, b_index = ctx.first_of_class(2), ctx.first_of_class(5)
    a, b = (to_model_range(test_images[i : i + 1]) for i in (a_index, b_index))
    labels = [f"test #{a_index} (2)", f"test #{b_index} (5)"]
    files = []
    for rule in RULES:
        result = merge(ctx.cpu_model, ctx.schedule, a, b, list(MERGE_WEIGHTS), rule=rule, levels=ctx.ddim_levels())
        rows = figures.merge_rows(labels, a, b, result, list(MERGE_WEIGHTS), rule)
        name = f"merge-2-5-{rule}.png"
        figures.panel_figure(rows, ctx.out / name, title=f"2 + 5, {rule} mix, DDIM-{ctx.settings.ddim_steps} inversion")
        files.append(name)
    return {"a": a_index, "b": b_index, "weights": list(MERGE_WEIGHTS), "rules": list(RULES), "files": files}


def merge_study(ctx: Context) -> dict:
    """What 50/50 merges of every pair of digit classes decode to, by mixing rule, by the classifier."""
    from mnistdiff.evaluation import load_classifier, load_reference
    from mnistdiff.experiments import figures
    from mnistdiff.experiments.merge_study import merge_study as study_of, to_markdown

    images, labels = ctx.test_set()
    classifier, _ = load_classifier(ctx.dataset)
    study = study_of(ctx.cpu_model, ctx.schedule, images, labels, classifier, load_reference(ctx.dataset)["test"],
                     ctx.ddim_levels(), per_class=ctx.settings.merge_per_class, seed=ctx.settings.seed)
    figures.merge_heatmaps(study, ctx.out / "merge-study.png")
    (ctx.out / "merge-study.md").write_text(to_markdown(study))
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
    with open(fid_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {"available": False, "files": []}
    plot_fid_curve(fid_csv, ctx.out / "fid-curve.png")
    (ctx.out / "fid.csv").write_text(Path(fid_csv).read_text())
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
        with open(log) as f:
            last = list(csv.DictReader(f))[-1:]
        if last:
            covers |= {"steps_in_all": int(last[0]["step"]), "minutes_in_all": float(last[0]["elapsed_s"]) / 60}
    if record.is_file():
        stage = json.loads(record.read_text())
        while stage.get("base"):
            covers["stages"] += 1
            stage = stage["base"]
    return covers
