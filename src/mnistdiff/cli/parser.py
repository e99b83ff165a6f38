"""The command line's arguments: every subcommand and its options."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from mnistdiff.data import DATASETS
from mnistdiff.evaluation.grid import ETAS, NFES, STEPS as GRID_STEPS
from mnistdiff.experiments import RULES
from mnistdiff.experiments.merge import SCALES as GUIDED_STUDY_SCALES, WEIGHTS
from mnistdiff.experiments.reconstruction import STEPS as RECONSTRUCTION_STEPS
from mnistdiff.explore.service import INVERSION_ITERATIONS as EXPLORER_INVERSION_ITERATIONS
from mnistdiff.model import PRESETS, TrainConfig
from mnistdiff.model.presets import MODEL_SETTINGS
from mnistdiff.precision import PRECISIONS
from mnistdiff.samplers import DEFAULT_SAMPLER, SAMPLERS, SPACINGS
from mnistdiff.samplers.ddim import check_eta
from mnistdiff.samplers.guidance import DEFAULT_GUIDANCE, check_guidance


class HelpFormatter(argparse.HelpFormatter):
    """Each option's help ends with its default, where it has one (flags, which take no value, say theirs in words)."""

    def _get_help_string(self, action):
        unset = action.default is None or action.nargs == 0 or action.default == argparse.SUPPRESS
        shown = not unset and "%(default)" not in (action.help or "")
        return (action.help or "") + (" (default: %(default)s)" if shown else "")


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, formatter_class=HelpFormatter, **kwargs)

    def error(self, message: str):
        raise UsageError(message)


class UsageError(Exception):
    pass


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _eta(text: str) -> float:
    value = float(text)
    try:
        return check_eta(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


SEEDS = 2**63  # a seed is 0 .. 2**63 - 1: batch k draws from seed + k, and torch takes up to 2**64 - 1


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < SEEDS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**63 - 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, got {value}")
    return value


def _png_file(text: str) -> str:
    """A file name for a PNG writer: it must end in .png."""
    return _with_suffix(text, {".png": "PNG"}, "a PNG is written")


def _figure_file(text: str) -> str:
    """A file name for a matplotlib figure: its suffix names a format matplotlib writes (.png, .pdf, .svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = {f".{ext}": name for ext, name in FigureCanvasBase.get_supported_filetypes().items()}
    return _with_suffix(text, formats, "a figure is written in the format its suffix names")


def _with_suffix(text: str, formats: dict[str, str], what: str) -> str:
    if Path(text).suffix.lower() not in formats:
        names = ", ".join(sorted(formats))
        raise argparse.ArgumentTypeError(f"{text}: {what}: end the name in {names}")
    return text


def _curves(text: str) -> list[tuple[str, str, int | None]]:
    """sampler:spacing[:t_end], comma-separated, e.g. ddim:uniform,dpm-solver:uniform:200."""
    curves = []
    for item in text.split(","):
        parts = item.split(":")
        ok = 2 <= len(parts) <= 3 and parts[0] in SAMPLERS and parts[1] in SPACINGS \
            and (len(parts) == 2 or parts[2].isdigit())
        if not ok:
            raise argparse.ArgumentTypeError(f"{item}: use a sampler ({', '.join(SAMPLERS)}), then a spacing "
                                             f"(:{', :'.join(SPACINGS)}), then optionally :T_END (a timestep)")
        curves.append((parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None))
    return curves


def _model_run_args(p: argparse.ArgumentParser) -> None:
    _precision_arg(p, "fp32", "bf16 autocast (faster where the device has bf16 units), fp32, or auto: bf16 "
                              "exactly where it is faster")
    _compile_arg(p, "run the model through torch.compile (about a minute to build; faster after)")
    _device_arg(p, "where to run the model (auto: a CUDA GPU when there is one; its noise differs from the "
                   "CPU's for the same seed)")


def _precision_arg(p: argparse.ArgumentParser, default: str, help: str) -> None:
    p.add_argument("--precision", default=default, choices=PRECISIONS, help=help)


def _compile_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--compile", action="store_true", help=help)


def _device_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=help)


def _no_clip_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-clip", action="store_true",
                   help="do not clip the predicted x0 to [-1, 1] at each step (the CLI clips by default, as the DDPM code "
                        "does, except with guidance above 1, which clipping harms)")


def _seed_arg(p: argparse.ArgumentParser, help: str = "seed of the noise (batch k uses seed + k)") -> None:
    p.add_argument("--seed", type=_seed, default=0, help=help)


def _batch_size_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=_positive_int, default=64, help="images per model call")


def _data_dir_arg(p: argparse.ArgumentParser, what: str = "",
                  help: str = "folder with the IDX files (else $MNISTDIFF_DATA, else download to the cache)") -> None:
    p.add_argument("--data-dir", help=help + what)


def _checkpoint_arg(p, help: str = "run folder, checkpoint folder or diffusers model folder (default: the shipped model)",
                    required: bool = False) -> None:
    """--checkpoint on a parser or an argument group."""
    p.add_argument("--checkpoint", required=required, help=help)


def _preset_arg(p: argparse.ArgumentParser, help: str, default: str | None = "small") -> None:
    p.add_argument("--preset", default=default, choices=list(PRESETS), help=help)


def _dataset_arg(p: argparse.ArgumentParser, help: str, default: str | None = "mnist") -> None:
    p.add_argument("--dataset", default=default, choices=DATASETS, help=help)


def _n_arg(p: argparse.ArgumentParser, default: int, help: str) -> None:
    p.add_argument("--n", type=_positive_int, default=default, help=help)


def _yes_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="allow --n above 100,000 images")


def _steps_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps of the inversion and the decoding")


def _inversion_iterations_arg(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--inversion-iterations", type=_non_negative_int, default=default, metavar="K",
                   help="refine each inversion step by K fixed-point iterations, so that DDIM decodes the "
                        "latent back: (1 + K) model calls a step (0: plain DDIM inversion)")


def train_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per field of TrainConfig: its name, type and choices, its help from the field's metadata,
    and each preset's value as its default (None here, so that the preset, or on --resume the run, decides)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        values = {name: getattr(preset.train, f.name, f.default) for name, preset in PRESETS.items()}
        default = (f"{next(iter(values.values()))}" if len(set(values.values())) == 1
                   else "the preset's: " + ", ".join(f"{name} {v}" for name, v in values.items()))
        p.add_argument("--" + f.name.replace("_", "-"), type=hints[f.name], choices=f.metadata.get("choices"),
                       help=f"{f.metadata['help']} (default: {default})")


def train_settings(args) -> dict:
    """The TrainConfig flags' values, by field name, and the model's (MODEL_SETTINGS); None where not given."""
    model = {name: getattr(args, name, None) for name in MODEL_SETTINGS}
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)} | model


def _labels(text: str) -> list[int] | str:
    """'all', or comma-separated class numbers such as 7 or 2,5,8."""
    if text == "all":
        return text
    try:
        labels = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: use a class number (7), a comma list (2,5,8) or all") from None
    if any(v < 0 for v in labels):
        raise argparse.ArgumentTypeError(f"{text}: class numbers are 0 or more")
    return labels


def _guidance(text: str) -> float:
    try:
        return check_guidance(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _label_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", type=_labels,
                   help="draw these classes from a conditional model: 7, a comma list 2,5,8 (repeated in turn) or "
                        "all (0..classes-1 in turn); without --checkpoint the shipped conditional model")
    p.add_argument("--guidance", type=_guidance,
                   help=f"with --label: classifier-free guidance scale, 1 the conditional model, more follows the "
                        f"label harder at one call of a doubled batch per step (default: {DEFAULT_GUIDANCE:g})")


def _sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=list(SAMPLERS),
                   help="how to step from noise to images; a distilled student without it takes its own, ddim "
                        "or consistency, on the trailing grid, for the steps it was distilled for (default: "
                        f"{DEFAULT_SAMPLER}, the best FID per model call measured; ddim, deterministic, inverts)")
    p.add_argument("--steps", type=_positive_int,
                   help="model evaluations (default: 50; ddpm: every one of the T steps, 1000 for the shipped model; "
                        "heun and edm make 2n - 1 for n steps, so at most this many)")
    p.add_argument("--eta", type=_eta, help="ddim's noise, from 0 to 1: 0 (its default) deterministic, 1 like DDPM")
    p.add_argument("--variance", choices=["posterior", "beta"], help="ddpm's noise (its default: posterior)")
    p.add_argument("--spacing", choices=SPACINGS,
                   help="where the levels lie: uniform in t as the DDIM code, trailing (the same from T - 1), "
                        "quadratic (denser near clean data) or evenly in log-SNR (default: the sampler's own; "
                        "uniform for ddim, as the DDIM code, trailing for the others)")
    p.add_argument("--t-end", type=_non_negative_int,
                   help="last timestep the model sees before the sampler jumps to clean data (default: 0)")
    _no_clip_arg(p)
    _seed_arg(p)
    _batch_size_arg(p)
    p.add_argument("--raw-weights", action="store_true", help="use the raw weights instead of the EMA copy")
    _label_args(p)
    _model_run_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mnistdiff", description="DDPM and DDIM on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a noise predictor")
    _preset_arg(p, "model shape and its training defaults (default: small; on --resume the run's)", default=None)
    _dataset_arg(p, "what to train on (default: mnist; on --resume the run's)", default=None)
    _data_dir_arg(p)
    p.add_argument("--minutes", type=float,
                   help="stop after this many minutes of wall time, FID checks not counted, --compile's "
                        "compiling counted (a cosine decay then ends with them)")
    _device_arg(p, "where to train (auto: a CUDA GPU if there is one)")
    _compile_arg(p, "run training steps through torch.compile")
    train_config_args(p)
    p.add_argument("--preconditioning", choices=["none", "edm"],
                   help="what the network predicts: eps (none), or EDM's F with its input and output scaling "
                        "and loss weights; samplers get eps either way (default: the preset's)")
    p.add_argument("--sigma-data", type=float, help="EDM's data standard deviation (default: 0.5)")
    p.add_argument("--base", type=_positive_int,
                   help="channels of the UNet's first level, the others a multiple of it (default: the preset's)")
    p.add_argument("--blocks", type=_positive_int,
                   help="ResNet blocks per level (default: the preset's); with --init-from, more than the "
                        "model's starts from a deeper copy with the same outputs")
    p.add_argument("--full-res", type=_non_negative_int, metavar="CHANNELS",
                   help="add a correction at the image's own resolution with this many channels, for a UNet "
                        "that sees pixel patches (0: none; default: the preset's)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, samples/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--init-from", metavar="PATH",
                   help="start a new run from this run's or checkpoint's EMA weights, with a fresh optimizer")
    p.add_argument("--conditional", action="store_true",
                   help="a class-conditional model, one class per label of the training set (with --init-from "
                        "an unconditional model: starts as that model)")

    p = sub.add_parser("sample", help="draw images from a checkpoint")
    _checkpoint_arg(p)
    _sampler_args(p)
    _n_arg(p, 64, "number of images")
    _yes_arg(p)
    p.add_argument("--out", type=_png_file, default="samples.png", help="grid PNG to write")
    p.add_argument("--npz", help="also write the images (uint8, key 'images') to this .npz, with --label their "
                                 "labels too (int64, key 'labels')")

    p = sub.add_parser("fid", help="FID, precision/recall and class shares of generated images; with labels, "
                                   "the share read as the digit asked for")
    source = p.add_mutually_exclusive_group()
    _checkpoint_arg(source, "run folder or checkpoint folder to sample from (default: the shipped model)")
    source.add_argument("--npz", help="uint8 images under the key 'images' instead of sampling, and their labels "
                                      "under 'labels' if it has them (as sample --label --npz writes)")
    _sampler_args(p)
    _n_arg(p, 2048, "number of images (the report used 2048)")
    _yes_arg(p)
    _dataset_arg(p, "default: the checkpoint's, or mnist", default=None)
    _data_dir_arg(p, "; for the real-data floor and recall")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--inception", action="store_true",
                   help="also the standard Inception FID vs the test set (needs pytorch-fid and its weights)")
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth (default: torch.hub's cache)")

    p = sub.add_parser("eval-grid", help="FID over eta x steps and DDPM (Table 1 of the DDIM paper)")
    _checkpoint_arg(p)
    _n_arg(p, 1000, "images per cell: more is slower and more precise")
    p.add_argument("--etas", type=lambda t: [_eta(v) for v in t.split(",")], default=list(ETAS),
                   help="DDIM etas, comma-separated")
    p.add_argument("--steps", type=lambda t: [_positive_int(v) for v in t.split(",")], default=list(GRID_STEPS),
                   help="DDIM steps, comma-separated")
    p.add_argument("--no-ddpm", action="store_true", help="leave out the DDPM row")
    _no_clip_arg(p)
    _seed_arg(p)
    _batch_size_arg(p)
    _model_run_args(p)
    p.add_argument("--out", default="eval-grid", help="writes OUT.md and OUT.json")

    p = sub.add_parser("nfe-curve", help="FID against model evaluations for DDIM and DPM-Solver++ (table + PNG)")
    _checkpoint_arg(p)
    _n_arg(p, 1000, "images per point: more is slower and more precise")
    p.add_argument("--nfes", type=lambda t: [_positive_int(v) for v in t.split(",")], default=list(NFES),
                   help="model evaluations, comma-separated")
    p.add_argument("--curves", type=_curves, help="comma list of sampler:spacing[:t_end] "
                   "(default: ddim:uniform,dpm-solver:logsnr,dpm-solver:uniform)")
    _no_clip_arg(p)
    _data_dir_arg(p, "; for the real-data floor")
    _seed_arg(p)
    _batch_size_arg(p)
    _model_run_args(p)
    p.add_argument("--out", default="nfe-curve", help="writes OUT.md, OUT.json and OUT.png")

    p = sub.add_parser("export", help="copy a run's EMA weights, config and logs into a folder to ship")
    _checkpoint_arg(p, "run folder or checkpoint folder", required=True)
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--base", help="the exported model the run started from with --init-from: its logs "
                                  "come first and its record is kept")
    p.add_argument("--note", help="a line for the record, e.g. what else ran on the machine")

    p = sub.add_parser("plot-fid", help="PNG of FID against training time, from a run's fid.csv")
    p.add_argument("--run", help="run or exported folder holding fid.csv (default: the shipped model)")
    p.add_argument("--out", type=_figure_file, default="fid-curve.png", help="figure to write (.png, .pdf, .svg, ...)")

    p = sub.add_parser("train-classifier", help="train the feature classifier used by fid")
    _dataset_arg(p, "what to train on")
    _data_dir_arg(p)
    p.add_argument("--epochs", type=_positive_int, default=4, help="passes over the training set")
    _seed_arg(p, "seed of the weights and the data order")
    p.add_argument("--out", required=True, help="folder for classifier-<dataset>.safetensors and .json")

    p = sub.add_parser("reference-stats", help="feature statistics of the real train and test sets")
    _dataset_arg(p, "whose statistics")
    _data_dir_arg(p)
    p.add_argument("--out", required=True, help="folder for stats-<dataset>.safetensors and .json")

    p = sub.add_parser("bench", help="speed on this machine: 'model' (training and denoiser images/s) "
                                     "or 'sample' (DDPM against DDIM time for one batch)")
    p.add_argument("what", nargs="?", default="model", choices=["model", "sample"], help="what to time")
    _preset_arg(p, "model shape to time")
    _checkpoint_arg(p, "with 'sample': time this checkpoint's model instead of the preset's")
    p.add_argument("--ddim-steps", type=_positive_int, default=50, help="with 'sample': DDIM's steps")
    _batch_size_arg(p)
    _precision_arg(p, "auto", "bf16 autocast, fp32, or auto: bf16 where the device has bf16 units "
                              "(AVX512-BF16 or AMX on a CPU), else fp32")
    _compile_arg(p, "time the model through torch.compile")
    p.add_argument("--repeats", type=_positive_int, default=10, help="timed calls (the median is reported)")
    _device_arg(p, "where to time (auto: a CUDA GPU if there is one)")

    _distill_parser(sub)
    _experiment_parsers(sub)
    _explore_parser(sub)
    _report_parser(sub)
    return parser


# The TrainConfig fields `distill` takes: the loop's settings that a distillation uses.
DISTILL_SETTINGS = ("steps", "batch_size", "lr", "warmup", "lr_decay", "ema_decay", "precision", "seed", "log_every",
                    "sample_every", "checkpoint_every", "grid_images", "fid_every", "fid_images", "skip_nonfinite")


def _distill_parser(sub) -> None:
    from mnistdiff.distill.consistency import DEFAULT_LEVELS
    from mnistdiff.distill.student import DEFAULTS, METHODS

    p = sub.add_parser("distill", help="train a few-step student of a trained model (progressive or consistency "
                                       "distillation), in a run folder as train writes")
    p.add_argument("--method", choices=METHODS, help="progressive (Salimans & Ho 2022: one student step for two "
                   "of the teacher's) or consistency (Song et al. 2023); required for a new run")
    p.add_argument("--teacher", metavar="PATH", help="the model to distil: run, checkpoint or exported folder, "
                   "a shipped name, or for progressive the last round's student (default: the shipped model)")
    p.add_argument("--student-steps", type=_positive_int, metavar="N",
                   help="the steps the student samples in: progressive, a power of two, half the teacher's if "
                        "the teacher is a student; consistency, its default (required for a new run)")
    p.add_argument("--down-to", type=_positive_int, metavar="M",
                   help="progressive: go on in rounds, halving the steps down to M, each round in OUT/steps-N "
                        "with these settings, its student the next round's teacher (default: one round, in OUT)")
    p.add_argument("--levels", type=_positive_int,
                   help=f"consistency: levels of the grid whose neighbours the teacher steps between "
                        f"(default: {DEFAULT_LEVELS})")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, samples/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--minutes", type=float, help="stop after this many minutes of wall time, FID checks not "
                                                 "counted (a cosine decay then ends with them)")
    _data_dir_arg(p)
    _device_arg(p, "where to train (auto: a CUDA GPU if there is one)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in DISTILL_SETTINGS:
            values = {str(getattr(d, f.name)) for d in DEFAULTS.values()}
            default = "consistency 0.95, else 0.999" if f.name == "ema_decay" else ", ".join(sorted(values))
            p.add_argument("--" + f.name.replace("_", "-"), type=hints[f.name], choices=f.metadata.get("choices"),
                           help=f"{f.metadata['help']} (default: {default}; on --resume the run's)")


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="the whole report on one page: figures, FID and timing tables, inversion, "
                                      "merges (index.html in --out)")
    p.add_argument("--out", default="report", help="folder for index.html and its files (default: %(default)s)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick",
                      help="fewer images, about 10 minutes on 2 CPU cores (the default)")
    size.add_argument("--full", dest="size", action="store_const", const="full",
                      help="the report's counts: 2048 images per FID row, 10,000 for DDIM-50 (hours on a CPU)")
    p.set_defaults(size="quick")
    _checkpoint_arg(p)
    _device_arg(p, "where to sample and time (auto: a CUDA GPU when there is one); the inversion "
                   "experiments run on the CPU")
    _data_dir_arg(p)
    _precision_arg(p, "auto", "autocast of the FID rows' sampling and the timing: bf16, fp32, or auto (bf16 where "
                              "the device has bf16 units, else fp32); the inversion experiments run in fp32")
    _compile_arg(p, "sample the FID rows and time through torch.compile (about a minute to build, faster after: "
                    "worth it for --full)")
    p.add_argument("--force", action="store_true", help="recompute every part instead of reusing finished ones")
    p.add_argument("--conditional-checkpoint", default="conditional", metavar="PATH",
                   help="the class-conditional model of the section \"Draw me a 7\": a run or checkpoint folder, "
                        "or conditional, the shipped one (where this installation lacks it, the section is one line)")
    p.add_argument("--student-checkpoint", default="fast", metavar="PATH",
                   help="the distilled student of the section \"Fast\": a run or checkpoint folder, or fast, the "
                        "shipped student of the shipped model (where it does not apply, the section is one line)")


def _prompt_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", help="with a Stable Diffusion pipeline as --checkpoint: the text condition of "
                                    "inversion and decoding (default: empty)")


def _experiment_parsers(sub) -> None:
    images_help = "test-set indices or PNG files"
    p = sub.add_parser("invert", help="images -> DDIM latents x_T (.npz), or latents -> images with --decode")
    p.add_argument("images", nargs="*", help=images_help)
    p.add_argument("--decode", help="a latents .npz (key 'latents') to decode instead")
    _experiment_args(p)
    _prompt_arg(p)
    _inversion_iterations_arg(p)
    p.add_argument("--out", default="latents.npz", help="latents .npz, or with --decode a grid PNG")

    p = sub.add_parser("merge", help="invert two digits, mix their latents, decode; compare with mixing pixels")
    p.add_argument("a", help="test-set index or PNG file")
    p.add_argument("b", help="test-set index or PNG file")
    p.add_argument("--rule", default="linear", choices=list(RULES), help="how to mix latents")
    p.add_argument("--weights", type=lambda t: [float(v) for v in t.split(",")],
                   default=list(WEIGHTS), help="mixing weights of B, comma-separated")
    _experiment_args(p)
    _prompt_arg(p)
    _inversion_iterations_arg(p)
    _target_args(p, _guidance, "S", f"with --target: classifier-free guidance scale of the decoding, 1 the "
                 f"conditional model (default: {DEFAULT_GUIDANCE:g})")
    p.add_argument("--out", type=_figure_file, default="merge.png", help="figure to write (.png, .pdf, .svg, ...)")

    p = sub.add_parser("reconstruction", help="DDIM invert-then-decode error of test images over S (DDIM Table 2)")
    _n_arg(p, 200, "test images")
    _experiment_args(p, steps=False)
    p.add_argument("--steps", type=lambda t: [_positive_int(v) for v in t.split(",")],
                   default=list(RECONSTRUCTION_STEPS), help="DDIM steps S, comma-separated")
    p.add_argument("--inversion-iterations", type=lambda t: [_non_negative_int(v) for v in t.split(",")],
                   default=[0], metavar="K,...", help="refinements of each inversion step, one table row each, "
                   "comma-separated (0: plain DDIM inversion; K costs (1 + K) model calls a step)")
    p.add_argument("--out", default="reconstruction", help="writes OUT.md and OUT.json")

    p = sub.add_parser("merge-study", help="what merges of each pair of digit classes give, by mixing rule")
    p.add_argument("--per-class", type=_positive_int, default=20, help="image pairs per class pair")
    p.add_argument("--weight", type=float, default=0.5, help="mixing weight of the second image")
    _experiment_args(p)
    _inversion_iterations_arg(p)
    _seed_arg(p, "seed of the choice of images")
    _target_args(p, lambda t: [_guidance(v) for v in t.split(",")], "S,...",
                 f"with --target: guidance scales of the decoding, one table row each after the row without "
                 f"guidance (default: {','.join(f'{v:g}' for v in GUIDED_STUDY_SCALES)})")
    p.add_argument("--pair", type=_pair, metavar="A,B",
                   help="with --target: the two classes merged (default: 2,5)")
    p.add_argument("--out", default="merge-study", help="writes OUT.md, OUT.json and OUT.png (heat maps; with "
                                                        "--target OUT.md and OUT.json, a table per rule)")

    p = sub.add_parser("figure", help="the forward process of a digit, a latent interpolation, or a "
                                      "sampling trajectory (PNG and GIF)")
    p.add_argument("kind", choices=["forward", "interpolate", "trajectory"], help="which figure")
    p.add_argument("images", nargs="*", help="forward: one image; interpolate: two (" + images_help + ")")
    _experiment_args(p)
    p.add_argument("--frames", type=_positive_int, default=10, help="interpolate: frames of the path")
    _n_arg(p, 16, "trajectory: images in the batch")
    _seed_arg(p, "trajectory: seed of the noise")
    p.add_argument("--out", default="figure", help="writes OUT.png (and OUT.gif for interpolate and trajectory)")


def _pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: give two class numbers, as 2,5") from None
    if min(a, b) < 0:
        raise argparse.ArgumentTypeError(f"{text}: class numbers are 0 or more")
    return a, b


def _target_args(p: argparse.ArgumentParser, guidance_type, metavar: str, guidance_help: str) -> None:
    """--target, --guidance and --invert-with of the guided merges."""
    p.add_argument("--target", type=_non_negative_int, metavar="DIGIT",
                   help="decode the mix towards this class with classifier-free guidance (a conditional model; "
                        "without --checkpoint the shipped conditional model)")
    p.add_argument("--guidance", type=guidance_type, metavar=metavar, help=guidance_help)
    p.add_argument("--invert-with", choices=["labels", "none"],
                   help="invert A and B with their labels (known for test-set indices; the default with a "
                        "conditional model) or with no label")


def _experiment_args(p: argparse.ArgumentParser, steps: bool = True) -> None:
    """What every inversion experiment takes: the model, how to run it, the DDIM steps, the data."""
    _checkpoint_arg(p)
    if steps:
        _steps_arg(p)
    _data_dir_arg(p, "; for test-set indices")
    _model_run_args(p)


def _explore_parser(sub) -> None:
    p = sub.add_parser("explore", help="a local web page: draw digits, invert, mix latents, watch them denoise "
                                       "(needs pip install 'mnistdiff[explore]')")
    _checkpoint_arg(p, "default: the shipped model; conditional: the shipped class-conditional model, with a digit "
                       "picker and a guidance slider")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="port to listen on")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    _data_dir_arg(p, help="folder with the test-set IDX files for the digit picker "
                          "(else $MNISTDIFF_DATA or the cache; never downloaded)")
    _device_arg(p, "where to run the model (auto: a CUDA GPU when there is one)")
    _inversion_iterations_arg(p, default=EXPLORER_INVERSION_ITERATIONS)
    p.add_argument("--student", default="fast", metavar="PATH",
                   help="a distilled student of the model, for the \"student\" sampler and the mix's fast decode "
                        "(default: fast, the shipped student, beside the shipped model only)")
