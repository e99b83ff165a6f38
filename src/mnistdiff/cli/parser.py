"""The command line's arguments: every subcommand and its options."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from mnistdiff.cli.arguments import (
    Parser, batch_size_arg, checkpoint_arg, compile_arg, curve_specs, data_dir_arg, dataset_arg, device_arg,
    eta_value, figure_file, guidance_scale, inversion_iterations_arg, model_run_args, n_arg, no_clip_arg,
    non_negative_int, png_file, port_number, positive_int, precision_arg, preset_arg, sampler_args, seed_arg,
    steps_arg, train_config_args, yes_arg,
)
from mnistdiff.evaluation.grid import ETAS, NFES, STEPS as GRID_STEPS
from mnistdiff.experiments import RULES
from mnistdiff.experiments.merge import SCALES as GUIDED_STUDY_SCALES, WEIGHTS
from mnistdiff.experiments.reconstruction import STEPS as RECONSTRUCTION_STEPS
from mnistdiff.explore.service import INVERSION_ITERATIONS as EXPLORER_INVERSION_ITERATIONS
from mnistdiff.model import TrainConfig
from mnistdiff.samplers.guidance import DEFAULT_GUIDANCE


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mnistdiff", description="DDPM and DDIM on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a noise predictor")
    preset_arg(p, "model shape and its training defaults (default: small; on --resume the run's)", default=None)
    dataset_arg(p, "what to train on (default: mnist; on --resume the run's)", default=None)
    data_dir_arg(p)
    p.add_argument("--minutes", type=float,
                   help="stop after this many minutes of wall time, FID checks not counted, --compile's "
                        "compiling counted (a cosine decay then ends with them)")
    device_arg(p, "where to train (auto: a CUDA GPU if there is one)")
    compile_arg(p, "run training steps through torch.compile")
    train_config_args(p)
    p.add_argument("--preconditioning", choices=["none", "edm"],
                   help="what the network predicts: eps (none), or EDM's F with its input and output scaling "
                        "and loss weights; samplers get eps either way (default: the preset's)")
    p.add_argument("--sigma-data", type=float, help="EDM's data standard deviation (default: 0.5)")
    p.add_argument("--base", type=positive_int,
                   help="channels of the UNet's first level, the others a multiple of it (default: the preset's)")
    p.add_argument("--blocks", type=positive_int,
                   help="ResNet blocks per level (default: the preset's); with --init-from, more than the "
                        "model's starts from a deeper copy with the same outputs")
    p.add_argument("--full-res", type=non_negative_int, metavar="CHANNELS",
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
    checkpoint_arg(p)
    sampler_args(p)
    n_arg(p, 64, "number of images")
    yes_arg(p)
    p.add_argument("--out", type=png_file, default="samples.png", help="grid PNG to write")
    p.add_argument("--npz", help="also write the images (uint8, key 'images') to this .npz, with --label their "
                                 "labels too (int64, key 'labels')")

    p = sub.add_parser("fid", help="FID, precision/recall and class shares of generated images; with labels, "
                                   "the share read as the digit asked for")
    source = p.add_mutually_exclusive_group()
    checkpoint_arg(source, "run folder or checkpoint folder to sample from (default: the shipped model)")
    source.add_argument("--npz", help="uint8 images under the key 'images' instead of sampling, and their labels "
                                      "under 'labels' if it has them (as sample --label --npz writes)")
    sampler_args(p)
    n_arg(p, 2048, "number of images (the report used 2048)")
    yes_arg(p)
    dataset_arg(p, "default: the checkpoint's, or mnist", default=None)
    data_dir_arg(p, "; for the real-data floor and recall")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--inception", action="store_true",
                   help="also the standard Inception FID vs the test set (needs pytorch-fid and its weights)")
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth (default: torch.hub's cache)")

    p = sub.add_parser("eval-grid", help="FID over eta x steps and DDPM (Table 1 of the DDIM paper)")
    checkpoint_arg(p)
    n_arg(p, 1000, "images per cell: more is slower and more precise")
    p.add_argument("--etas", type=lambda t: [eta_value(v) for v in t.split(",")], default=list(ETAS),
                   help="DDIM etas, comma-separated")
    p.add_argument("--steps", type=lambda t: [positive_int(v) for v in t.split(",")], default=list(GRID_STEPS),
                   help="DDIM steps, comma-separated")
    p.add_argument("--no-ddpm", action="store_true", help="leave out the DDPM row")
    no_clip_arg(p)
    seed_arg(p)
    batch_size_arg(p)
    model_run_args(p)
    p.add_argument("--out", default="eval-grid", help="writes OUT.md and OUT.json")

    p = sub.add_parser("nfe-curve", help="FID against model evaluations for DDIM and DPM-Solver++ (table + PNG)")
    checkpoint_arg(p)
    n_arg(p, 1000, "images per point: more is slower and more precise")
    p.add_argument("--nfes", type=lambda t: [positive_int(v) for v in t.split(",")], default=list(NFES),
                   help="model evaluations, comma-separated")
    p.add_argument("--curves", type=curve_specs, help="comma list of sampler:spacing[:t_end] "
                   "(default: ddim:uniform,dpm-solver:logsnr,dpm-solver:uniform)")
    no_clip_arg(p)
    data_dir_arg(p, "; for the real-data floor")
    seed_arg(p)
    batch_size_arg(p)
    model_run_args(p)
    p.add_argument("--out", default="nfe-curve", help="writes OUT.md, OUT.json and OUT.png")

    p = sub.add_parser("export", help="copy a run's EMA weights, config and logs into a folder to ship")
    checkpoint_arg(p, "run folder or checkpoint folder", required=True)
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--base", help="the exported model the run started from with --init-from: its logs "
                                  "come first and its record is kept")
    p.add_argument("--note", help="a line for the record, e.g. what else ran on the machine")

    p = sub.add_parser("plot-fid", help="PNG of FID against training time, from a run's fid.csv")
    p.add_argument("--run", help="run or exported folder holding fid.csv (default: the shipped model)")
    p.add_argument("--out", type=figure_file, default="fid-curve.png", help="figure to write (.png, .pdf, .svg, ...)")

    p = sub.add_parser("train-classifier", help="train the feature classifier used by fid")
    dataset_arg(p, "what to train on")
    data_dir_arg(p)
    p.add_argument("--epochs", type=positive_int, default=4, help="passes over the training set")
    seed_arg(p, "seed of the weights and the data order")
    p.add_argument("--out", required=True, help="folder for classifier-<dataset>.safetensors and .json")

    p = sub.add_parser("reference-stats", help="feature statistics of the real train and test sets")
    dataset_arg(p, "whose statistics")
    data_dir_arg(p)
    p.add_argument("--out", required=True, help="folder for stats-<dataset>.safetensors and .json")

    p = sub.add_parser("bench", help="speed on this machine: 'model' (training and denoiser images/s) "
                                     "or 'sample' (DDPM against DDIM time for one batch)")
    p.add_argument("what", nargs="?", default="model", choices=["model", "sample"], help="what to time")
    preset_arg(p, "model shape to time")
    checkpoint_arg(p, "with 'sample': time this checkpoint's model instead of the preset's")
    p.add_argument("--ddim-steps", type=positive_int, default=50, help="with 'sample': DDIM's steps")
    batch_size_arg(p)
    precision_arg(p, "auto", "bf16 autocast, fp32, or auto: bf16 where the device has bf16 units "
                              "(AVX512-BF16 or AMX on a CPU), else fp32")
    compile_arg(p, "time the model through torch.compile")
    p.add_argument("--repeats", type=positive_int, default=10, help="timed calls (the median is reported)")
    device_arg(p, "where to time (auto: a CUDA GPU if there is one)")

    _distill_parser(sub)
    _trajectories_parser(sub)
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

    p = sub.add_parser("distill", help="train a few-step student of a trained model (progressive, consistency or "
                                       "trajectory distillation), in a run folder as train writes")
    p.add_argument("--method", choices=METHODS, help="progressive (Salimans & Ho 2022: one student step for two "
                   "of the teacher's), consistency (Song et al. 2023) or trajectory (each student step lands on "
                   "the teacher's recorded ODE trajectories); required for a new run")
    p.add_argument("--teacher", metavar="PATH", help="the model to distil: run, checkpoint or exported folder, "
                   "a shipped name, or for progressive the last round's student (default: the shipped model; "
                   "trajectory: the recording's)")
    p.add_argument("--trajectories", metavar="DIR", help="trajectory: the teacher's trajectories, as "
                   "mnistdiff trajectories records them")
    p.add_argument("--own-states", type=float, metavar="P",
                   help="trajectory: the share of images whose step starts from the state the student's EMA "
                        "reaches in its own steps, pulled back onto the recording (default: 0)")
    p.add_argument("--init-from", metavar="PATH", help="start from this student's weights instead of the "
                   "teacher's: a student with the same network, such as an earlier run of more steps")
    p.add_argument("--student-steps", type=positive_int, metavar="N",
                   help="the steps the student samples in: progressive, a power of two, half the teacher's if "
                        "the teacher is a student; consistency, its default; trajectory, a count whose grid the "
                        "recording holds (required for a new run)")
    p.add_argument("--down-to", type=positive_int, metavar="M",
                   help="progressive: go on in rounds, halving the steps down to M, each round in OUT/steps-N "
                        "with these settings, its student the next round's teacher (default: one round, in OUT)")
    p.add_argument("--levels", type=positive_int,
                   help=f"consistency: levels of the grid whose neighbours the teacher steps between "
                        f"(default: {DEFAULT_LEVELS})")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, samples/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--minutes", type=float, help="stop after this many minutes of wall time, FID checks not "
                                                 "counted (a cosine decay then ends with them)")
    data_dir_arg(p)
    device_arg(p, "where to train (auto: a CUDA GPU if there is one)")
    compile_arg(p, "run training steps through torch.compile")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in DISTILL_SETTINGS:
            values = {str(getattr(d, f.name)) for d in DEFAULTS.values()}
            default = "consistency 0.95, else 0.999" if f.name == "ema_decay" else ", ".join(sorted(values))
            p.add_argument("--" + f.name.replace("_", "-"), type=hints[f.name], choices=f.metadata.get("choices"),
                           help=f"{f.metadata['help']} (default: {default}; on --resume the run's)")


def _trajectories_parser(sub) -> None:
    p = sub.add_parser("trajectories", help="record a model's ODE trajectories at a student's levels, for "
                                            "distill --method trajectory")
    checkpoint_arg(p, "the teacher: run, checkpoint or exported folder (default: the shipped model)")
    p.add_argument("--out", required=True, help="folder for the recording; the same command continues it")
    n_arg(p, 40960, "trajectories to record")
    p.add_argument("--student-steps", type=positive_int, default=4, metavar="N",
                   help="keep the states at the levels of an N-step student, which serve any N' dividing N "
                        "(default: %(default)s)")
    p.add_argument("--solver-steps", type=positive_int, default=20,
                   help="DPM-Solver++(2M) steps on the trailing grid, a multiple of N (default: %(default)s)")
    seed_arg(p, "seed of the noise (chunk k uses seed + k)")
    precision_arg(p, "fp32", "bf16 autocast, fp32, or auto: bf16 exactly where it is faster")
    compile_arg(p, "run the teacher through torch.compile")


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
    checkpoint_arg(p)
    device_arg(p, "where to sample and time (auto: a CUDA GPU when there is one); the inversion "
                   "experiments run on the CPU")
    data_dir_arg(p)
    precision_arg(p, "auto", "autocast of the FID rows' sampling and the timing: bf16, fp32, or auto (bf16 where "
                              "the device has bf16 units, else fp32); the inversion experiments run in fp32")
    compile_arg(p, "sample the FID rows and time through torch.compile (about a minute to build, faster after: "
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
    inversion_iterations_arg(p)
    p.add_argument("--out", default="latents.npz", help="latents .npz, or with --decode a grid PNG")

    p = sub.add_parser("merge", help="invert two digits, mix their latents, decode; compare with mixing pixels")
    p.add_argument("a", help="test-set index or PNG file")
    p.add_argument("b", help="test-set index or PNG file")
    p.add_argument("--rule", default="linear", choices=list(RULES), help="how to mix latents")
    p.add_argument("--weights", type=lambda t: [float(v) for v in t.split(",")],
                   default=list(WEIGHTS), help="mixing weights of B, comma-separated")
    _experiment_args(p)
    _prompt_arg(p)
    inversion_iterations_arg(p)
    _target_args(p, guidance_scale, "S", f"with --target: classifier-free guidance scale of the decoding, 1 the "
                 f"conditional model (default: {DEFAULT_GUIDANCE:g})")
    p.add_argument("--out", type=figure_file, default="merge.png", help="figure to write (.png, .pdf, .svg, ...)")

    p = sub.add_parser("reconstruction", help="DDIM invert-then-decode error of test images over S (DDIM Table 2)")
    n_arg(p, 200, "test images")
    _experiment_args(p, steps=False)
    p.add_argument("--steps", type=lambda t: [positive_int(v) for v in t.split(",")],
                   default=list(RECONSTRUCTION_STEPS), help="DDIM steps S, comma-separated")
    p.add_argument("--inversion-iterations", type=lambda t: [non_negative_int(v) for v in t.split(",")],
                   default=[0], metavar="K,...", help="refinements of each inversion step, one table row each, "
                   "comma-separated (0: plain DDIM inversion; K costs (1 + K) model calls a step)")
    p.add_argument("--out", default="reconstruction", help="writes OUT.md and OUT.json")

    p = sub.add_parser("merge-study", help="what merges of each pair of digit classes give, by mixing rule")
    p.add_argument("--per-class", type=positive_int, default=20, help="image pairs per class pair")
    p.add_argument("--weight", type=float, default=0.5, help="mixing weight of the second image")
    _experiment_args(p)
    inversion_iterations_arg(p)
    seed_arg(p, "seed of the choice of images")
    _target_args(p, lambda t: [guidance_scale(v) for v in t.split(",")], "S,...",
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
    p.add_argument("--frames", type=positive_int, default=10, help="interpolate: frames of the path")
    n_arg(p, 16, "trajectory: images in the batch")
    seed_arg(p, "trajectory: seed of the noise")
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
    p.add_argument("--target", type=non_negative_int, metavar="DIGIT",
                   help="decode the mix towards this class with classifier-free guidance (a conditional model; "
                        "without --checkpoint the shipped conditional model)")
    p.add_argument("--guidance", type=guidance_type, metavar=metavar, help=guidance_help)
    p.add_argument("--invert-with", choices=["labels", "none"],
                   help="invert A and B with their labels (known for test-set indices; the default with a "
                        "conditional model) or with no label")


def _experiment_args(p: argparse.ArgumentParser, steps: bool = True) -> None:
    """What every inversion experiment takes: the model, how to run it, the DDIM steps, the data."""
    checkpoint_arg(p)
    if steps:
        steps_arg(p)
    data_dir_arg(p, "; for test-set indices")
    model_run_args(p)


def _explore_parser(sub) -> None:
    p = sub.add_parser("explore", help="a local web page: draw digits, invert, mix latents, watch them denoise "
                                       "(needs pip install 'mnistdiff[explore]')")
    checkpoint_arg(p, "default: the shipped model; conditional: the shipped class-conditional model, with a digit "
                       "picker and a guidance slider")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=port_number, default=8000, help="port to listen on")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    data_dir_arg(p, help="folder with the test-set IDX files for the digit picker "
                          "(else $MNISTDIFF_DATA or the cache; never downloaded)")
    device_arg(p, "where to run the model (auto: a CUDA GPU when there is one)")
    inversion_iterations_arg(p, default=EXPLORER_INVERSION_ITERATIONS)
    p.add_argument("--student", default="fast", metavar="PATH",
                   help="a distilled student of the model, for the \"student\" sampler and the mix's fast decode "
                        "(default: fast, the shipped student, beside the shipped model only)")
