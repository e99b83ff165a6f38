"""The command line's building blocks: argument types that refuse bad values in one line, the options
several subcommands share, and the parser that reports its errors as UsageError."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from mnistdiff.data import DATASETS
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


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def eta_value(text: str) -> float:
    value = float(text)
    try:
        return check_eta(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


SEEDS = 2**63  # a seed is 0 .. 2**63 - 1: batch k draws from seed + k, and torch takes up to 2**64 - 1


def seed_value(text: str) -> int:
    value = int(text)
    if not 0 <= value < SEEDS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**63 - 1, got {value}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, got {value}")
    return value


def png_file(text: str) -> str:
    """A file name for a PNG writer: it must end in .png."""
    return with_suffix(text, {".png": "PNG"}, "a PNG is written")


def figure_file(text: str) -> str:
    """A file name for a matplotlib figure: its suffix names a format matplotlib writes (.png, .pdf, .svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = {f".{ext}": name for ext, name in FigureCanvasBase.get_supported_filetypes().items()}
    return with_suffix(text, formats, "a figure is written in the format its suffix names")


def with_suffix(text: str, formats: dict[str, str], what: str) -> str:
    if Path(text).suffix.lower() not in formats:
        names = ", ".join(sorted(formats))
        raise argparse.ArgumentTypeError(f"{text}: {what}: end the name in {names}")
    return text


def curve_specs(text: str) -> list[tuple[str, str, int | None]]:
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


def model_run_args(p: argparse.ArgumentParser) -> None:
    precision_arg(p, "fp32", "bf16 autocast (faster where the device has bf16 units), fp32, or auto: bf16 "
                              "exactly where it is faster")
    compile_arg(p, "run the model through torch.compile (about a minute to build; faster after)")
    device_arg(p, "where to run the model (auto: a CUDA GPU when there is one; its noise differs from the "
                   "CPU's for the same seed)")


def precision_arg(p: argparse.ArgumentParser, default: str, help: str) -> None:
    p.add_argument("--precision", default=default, choices=PRECISIONS, help=help)


def compile_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--compile", action="store_true", help=help)


def device_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=help)


def no_clip_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-clip", action="store_true",
                   help="do not clip the predicted x0 to [-1, 1] at each step (the CLI clips by default, as the DDPM code "
                        "does, except with guidance above 1, which clipping harms)")


def seed_arg(p: argparse.ArgumentParser, help: str = "seed of the noise (batch k uses seed + k)") -> None:
    p.add_argument("--seed", type=seed_value, default=0, help=help)


def batch_size_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per model call")


def data_dir_arg(p: argparse.ArgumentParser, what: str = "",
                  help: str = "folder with the IDX files (else $MNISTDIFF_DATA, else download to the cache)") -> None:
    p.add_argument("--data-dir", help=help + what)


def checkpoint_arg(p, help: str = "run folder, checkpoint folder or diffusers model folder (default: the shipped model)",
                    required: bool = False) -> None:
    """--checkpoint on a parser or an argument group."""
    p.add_argument("--checkpoint", required=required, help=help)


def preset_arg(p: argparse.ArgumentParser, help: str, default: str | None = "small") -> None:
    p.add_argument("--preset", default=default, choices=list(PRESETS), help=help)


def dataset_arg(p: argparse.ArgumentParser, help: str, default: str | None = "mnist") -> None:
    p.add_argument("--dataset", default=default, choices=DATASETS, help=help)


def n_arg(p: argparse.ArgumentParser, default: int, help: str) -> None:
    p.add_argument("--n", type=positive_int, default=default, help=help)


def yes_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="allow --n above 100,000 images")


def steps_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=positive_int, default=50, help="DDIM steps of the inversion and the decoding")


def inversion_iterations_arg(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--inversion-iterations", type=non_negative_int, default=default, metavar="K",
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


def label_spec(text: str) -> list[int] | str:
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


def guidance_scale(text: str) -> float:
    try:
        return check_guidance(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def label_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", type=label_spec,
                   help="draw these classes from a conditional model: 7, a comma list 2,5,8 (repeated in turn) or "
                        "all (0..classes-1 in turn); without --checkpoint the shipped conditional model")
    p.add_argument("--guidance", type=guidance_scale,
                   help=f"with --label: classifier-free guidance scale, 1 the conditional model, more follows the "
                        f"label harder at one call of a doubled batch per step (default: {DEFAULT_GUIDANCE:g})")


def sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=list(SAMPLERS),
                   help="how to step from noise to images; a distilled student without it takes its own, ddim "
                        "or consistency, on the trailing grid, for the steps it was distilled for (default: "
                        f"{DEFAULT_SAMPLER}, the best FID per model call measured; ddim, deterministic, inverts)")
    p.add_argument("--steps", type=positive_int,
                   help="model evaluations (default: 50; ddpm: every one of the T steps, 1000 for the shipped model; "
                        "heun and edm make 2n - 1 for n steps, so at most this many)")
    p.add_argument("--eta", type=eta_value, help="ddim's noise, from 0 to 1: 0 (its default) deterministic, 1 like DDPM")
    p.add_argument("--variance", choices=["posterior", "beta"], help="ddpm's noise (its default: posterior)")
    p.add_argument("--spacing", choices=SPACINGS,
                   help="where the levels lie: uniform in t as the DDIM code, trailing (the same from T - 1), "
                        "quadratic (denser near clean data) or evenly in log-SNR (default: the sampler's own; "
                        "uniform for ddim, as the DDIM code, trailing for the others)")
    p.add_argument("--t-end", type=non_negative_int,
                   help="last timestep the model sees before the sampler jumps to clean data (default: 0)")
    no_clip_arg(p)
    seed_arg(p)
    batch_size_arg(p)
    p.add_argument("--raw-weights", action="store_true", help="use the raw weights instead of the EMA copy")
    label_args(p)
    model_run_args(p)
