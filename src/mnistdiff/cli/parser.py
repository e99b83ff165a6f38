"""The command line's arguments: every subcommand and its options."""

from __future__ import annotations

import argparse

from mnistdiff.data import DATASETS
from mnistdiff.generate import SAMPLERS
from mnistdiff.model import PRESETS


class Parser(argparse.ArgumentParser):
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


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _curves(text: str) -> list[tuple[str, str, int | None]]:
    """sampler:spacing[:t_end], comma-separated, e.g. ddim:uniform,dpm-solver:uniform:200."""
    curves = []
    for item in text.split(","):
        parts = item.split(":")
        ok = 2 <= len(parts) <= 3 and parts[0] in ("ddim", "dpm-solver") \
            and parts[1] in ("uniform", "quadratic", "logsnr") and parts[:2] != ["ddim", "logsnr"] \
            and (len(parts) == 2 or parts[2].isdigit())
        if not ok:
            raise argparse.ArgumentTypeError(f"{item}: use ddim or dpm-solver, then :uniform, :quadratic or "
                                             "(dpm-solver only) :logsnr, then optionally :T_END (a timestep)")
        curves.append((parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None))
    return curves


def _model_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="run the model under bf16 autocast (faster on CPUs with bf16 units)")
    p.add_argument("--compile", action="store_true",
                   help="run the model through torch.compile (about a minute to build; faster after)")
    _device_arg(p, "where to run the model (auto: a CUDA GPU when there is one; its noise differs from the "
                   "CPU's for the same seed)")


def _device_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=help)


def _no_clip_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-clip", action="store_true",
                   help="do not clip the predicted x0 to [-1, 1] at each step (the CLI clips by default, as the DDPM code does)")


def _sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", default="ddim", choices=list(SAMPLERS))
    p.add_argument("--steps", type=_positive_int, default=50,
                   help="model evaluations of DDIM or DPM-Solver++ (DDPM always runs all T)")
    p.add_argument("--eta", type=_non_negative_float, default=0.0, help="DDIM noise: 0 deterministic, 1 like DDPM")
    p.add_argument("--spacing", choices=["uniform", "quadratic", "logsnr"],
                   help="uniform (default), quadratic (denser near t = 0), or logsnr for DPM-Solver++")
    p.add_argument("--t-end", type=_non_negative_int,
                   help="last timestep the model sees before DDIM or DPM-Solver++ jumps to clean data "
                        "(default: DDIM 0; DPM-Solver++ steps down to t = 0 as Lu et al.)")
    _no_clip_arg(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--raw-weights", action="store_true", help="use the raw weights instead of the EMA copy")
    _model_run_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mnistdiff", description="DDPM and DDIM on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a noise predictor")
    p.add_argument("--preset", default="small", choices=list(PRESETS), help="model shape and its training defaults")
    p.add_argument("--dataset", default="mnist", choices=DATASETS)
    p.add_argument("--data-dir", help="folder with the IDX files (else $MNISTDIFF_DATA, else download to the cache)")
    p.add_argument("--steps", type=_positive_int, help="total optimizer steps (default: the preset's)")
    p.add_argument("--minutes", type=float,
                   help="stop after this many minutes of wall time (a cosine decay then ends with them)")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=float)
    _device_arg(p, "where to train (auto: a CUDA GPU if there is one)")
    p.add_argument("--lr-decay", choices=["constant", "cosine"], help="after warm-up (default: the preset's)")
    p.add_argument("--min-snr-gamma", type=float,
                   help="weight each image's loss by min(SNR, gamma)/SNR (0: plain MSE; default: the preset's)")
    p.add_argument("--compile", action="store_true", help="run training steps through torch.compile")
    p.add_argument("--precision", choices=["fp32", "bf16"], help="bf16 autocast works on CPU (default: the preset's)")
    p.add_argument("--sample-every", type=_positive_int, help="write a sample grid every N steps")
    p.add_argument("--checkpoint-every", type=_positive_int, help="save a checkpoint every N steps")
    p.add_argument("--fid-every", type=_positive_int, help="log the FID of DDIM samples to fid.csv every N steps")
    p.add_argument("--fid-images", type=_positive_int, help="images per FID check (default 1000)")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, samples/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--init-from", metavar="PATH",
                   help="start a new run from this run's or checkpoint's EMA weights, with a fresh optimizer")

    p = sub.add_parser("sample", help="draw images from a checkpoint")
    p.add_argument("--checkpoint", help="run folder or checkpoint folder (default: the shipped model)")
    _sampler_args(p)
    p.add_argument("--n", type=_positive_int, default=64, help="number of images")
    p.add_argument("--out", default="samples.png", help="grid PNG to write")
    p.add_argument("--npz", help="also write the images (uint8, key 'images') to this .npz")

    p = sub.add_parser("fid", help="FID, precision/recall and class shares of generated images")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="run folder or checkpoint folder to sample from (default: the shipped model)")
    source.add_argument("--npz", help="uint8 images under the key 'images' instead of sampling")
    _sampler_args(p)
    p.add_argument("--n", type=_positive_int, default=2048, help="number of images (the report used 2048)")
    p.add_argument("--dataset", choices=DATASETS, help="default: the checkpoint's, or mnist")
    p.add_argument("--data-dir", help="folder with the IDX files (for the real-data floor and recall)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--inception", action="store_true",
                   help="also the standard Inception FID vs the test set (needs pytorch-fid and its weights)")
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth (default: torch.hub's cache)")

    p = sub.add_parser("eval-grid", help="FID over eta x steps and DDPM (Table 1 of the DDIM paper)")
    p.add_argument("--checkpoint", help="run folder or checkpoint folder (default: the shipped model)")
    p.add_argument("--n", type=_positive_int, default=1000, help="images per cell: more is slower and more precise")
    p.add_argument("--etas", type=lambda t: [_non_negative_float(v) for v in t.split(",")], default=[0.0, 0.5, 1.0])
    p.add_argument("--steps", type=lambda t: [_positive_int(v) for v in t.split(",")], default=[10, 20, 50, 100, 1000])
    p.add_argument("--no-ddpm", action="store_true", help="leave out the DDPM row")
    _no_clip_arg(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    _model_run_args(p)
    p.add_argument("--out", default="eval-grid", help="writes OUT.md and OUT.json")

    p = sub.add_parser("nfe-curve", help="FID against model evaluations for DDIM and DPM-Solver++ (table + PNG)")
    p.add_argument("--checkpoint", help="run folder or checkpoint folder (default: the shipped model)")
    p.add_argument("--n", type=_positive_int, default=1000, help="images per point: more is slower and more precise")
    p.add_argument("--nfes", type=lambda t: [_positive_int(v) for v in t.split(",")], default=[5, 10, 20, 50, 100])
    p.add_argument("--curves", type=_curves, help="comma list of sampler:spacing[:t_end] "
                   "(default: ddim:uniform,dpm-solver:logsnr,dpm-solver:uniform)")
    _no_clip_arg(p)
    p.add_argument("--data-dir", help="folder with the IDX files (for the real-data floor)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    _model_run_args(p)
    p.add_argument("--out", default="nfe-curve", help="writes OUT.md, OUT.json and OUT.png")

    p = sub.add_parser("export", help="copy a run's EMA weights, config and logs into a folder to ship")
    p.add_argument("--checkpoint", required=True, help="run folder or checkpoint folder")
    p.add_argument("--out", required=True)

    p = sub.add_parser("plot-fid", help="PNG of FID against training time, from a run's fid.csv")
    p.add_argument("--run", help="run or exported folder holding fid.csv (default: the shipped model)")
    p.add_argument("--out", default="fid-curve.png")

    p = sub.add_parser("train-classifier", help="train the feature classifier used by fid")
    p.add_argument("--dataset", default="mnist", choices=DATASETS)
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=_positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for classifier-<dataset>.safetensors and .json")

    p = sub.add_parser("reference-stats", help="feature statistics of the real train and test sets")
    p.add_argument("--dataset", default="mnist", choices=DATASETS)
    p.add_argument("--data-dir")
    p.add_argument("--out", required=True, help="folder for stats-<dataset>.safetensors and .json")

    p = sub.add_parser("bench", help="speed on this machine: 'model' (training and denoiser images/s) "
                                     "or 'sample' (DDPM against DDIM time for one batch)")
    p.add_argument("what", nargs="?", default="model", choices=["model", "sample"])
    p.add_argument("--preset", default="small", choices=list(PRESETS))
    p.add_argument("--checkpoint", help="with 'sample': time this checkpoint's model instead of the preset's")
    p.add_argument("--ddim-steps", type=_positive_int, default=50)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true", help="time the model through torch.compile")
    p.add_argument("--repeats", type=_positive_int, default=10)
    _device_arg(p, "where to time (auto: a CUDA GPU if there is one)")

    _experiment_parsers(sub)
    _report_parser(sub)
    return parser


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="the whole report on one page: figures, FID and timing tables, inversion, "
                                      "merges (index.html in --out)")
    p.add_argument("--out", default="report", help="folder for index.html and its files (default: %(default)s)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="fewer images, about 10 minutes on 2 CPU cores (the default)")
    size.add_argument("--full", action="store_true",
                      help="the report's counts: 2048 images per FID row, 10,000 for DDIM-50 (hours on a CPU)")
    p.add_argument("--checkpoint", help="run folder or checkpoint folder (default: the shipped model)")
    _device_arg(p, "where to sample and time (auto: a CUDA GPU when there is one); the inversion "
                   "experiments run on the CPU")
    p.add_argument("--data-dir", help="folder with the IDX files (else $MNISTDIFF_DATA, else download to the cache)")
    p.add_argument("--force", action="store_true", help="recompute every part instead of reusing finished ones")


def _experiment_parsers(sub) -> None:
    images_help = "test-set indices or PNG files"
    p = sub.add_parser("invert", help="images -> DDIM latents x_T (.npz), or latents -> images with --decode")
    p.add_argument("images", nargs="*", help=images_help)
    p.add_argument("--decode", help="a latents .npz (key 'latents') to decode instead")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--steps", type=_positive_int, default=50)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="latents.npz", help="latents .npz, or with --decode a grid PNG")

    p = sub.add_parser("merge", help="invert two digits, mix their latents, decode; compare with mixing pixels")
    p.add_argument("a", help="test-set index or PNG file")
    p.add_argument("b", help="test-set index or PNG file")
    p.add_argument("--rule", default="linear", choices=["linear", "slerp", "linear-norm"])
    p.add_argument("--weights", type=lambda t: [float(v) for v in t.split(",")],
                   default=[0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0], help="mixing weights of B, comma-separated")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--steps", type=_positive_int, default=50)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="merge.png")

    p = sub.add_parser("reconstruction", help="DDIM invert-then-decode error of test images over S (DDIM Table 2)")
    p.add_argument("--n", type=_positive_int, default=200, help="test images")
    p.add_argument("--steps", type=lambda t: [_positive_int(v) for v in t.split(",")],
                   default=[10, 20, 50, 100, 200, 500, 1000])
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--data-dir")
    p.add_argument("--out", default="reconstruction", help="writes OUT.md and OUT.json")

    p = sub.add_parser("merge-study", help="what merges of each pair of digit classes give, by mixing rule")
    p.add_argument("--per-class", type=_positive_int, default=20, help="image pairs per class pair")
    p.add_argument("--weight", type=float, default=0.5)
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--steps", type=_positive_int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="merge-study", help="writes OUT.md, OUT.json and OUT.png (heat maps)")

    p = sub.add_parser("figure", help="the forward process of a digit, a latent interpolation, or a "
                                      "sampling trajectory (PNG and GIF)")
    p.add_argument("kind", choices=["forward", "interpolate", "trajectory"])
    p.add_argument("images", nargs="*", help="forward: one image; interpolate: two (" + images_help + ")")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--steps", type=_positive_int, default=50)
    p.add_argument("--frames", type=_positive_int, default=10, help="interpolate: frames of the path")
    p.add_argument("--n", type=_positive_int, default=16, help="trajectory: images in the batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="figure", help="writes OUT.png (and OUT.gif for interpolate and trajectory)")
