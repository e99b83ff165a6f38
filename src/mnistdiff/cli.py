"""The `mnistdiff` command: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from mnistdiff.data import DATASETS, DataFileError
from mnistdiff.generate import SAMPLERS
from mnistdiff.model import PRESETS
from mnistdiff.train import Interrupted


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", default="ddim", choices=list(SAMPLERS))
    p.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps (DDPM always runs all T)")
    p.add_argument("--eta", type=_non_negative_float, default=0.0, help="DDIM noise: 0 deterministic, 1 like DDPM")
    p.add_argument("--spacing", default="uniform", choices=["uniform", "quadratic"])
    p.add_argument("--no-clip", action="store_true",
                   help="do not clip the predicted x0 to [-1, 1] at each step (the CLI clips by default, as the DDPM code does)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--raw-weights", action="store_true", help="use the raw weights instead of the EMA copy")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mnistdiff", description="DDPM and DDIM on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a noise predictor")
    p.add_argument("--preset", default="small", choices=list(PRESETS), help="model shape and its training defaults")
    p.add_argument("--dataset", default="mnist", choices=DATASETS)
    p.add_argument("--data-dir", help="folder with the IDX files (else $MNISTDIFF_DATA, else download to the cache)")
    p.add_argument("--steps", type=_positive_int, help="total optimizer steps (default: the preset's)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes of wall time")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=float)
    p.add_argument("--precision", choices=["fp32", "bf16"], help="bf16 autocast works on CPU (default: the preset's)")
    p.add_argument("--sample-every", type=_positive_int, help="write a sample grid every N steps")
    p.add_argument("--checkpoint-every", type=_positive_int, help="save a checkpoint every N steps")
    p.add_argument("--fid-every", type=_positive_int, help="log the FID of DDIM samples to fid.csv every N steps")
    p.add_argument("--fid-images", type=_positive_int, help="images per FID check (default 1000)")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, samples/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")

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

    p = sub.add_parser("eval-grid", help="FID over eta x steps and DDPM (Table 1 of the DDIM paper)")
    p.add_argument("--checkpoint", help="run folder or checkpoint folder (default: the shipped model)")
    p.add_argument("--n", type=_positive_int, default=1000, help="images per cell: more is slower and more precise")
    p.add_argument("--etas", type=lambda t: [_non_negative_float(v) for v in t.split(",")], default=[0.0, 0.5, 1.0])
    p.add_argument("--steps", type=lambda t: [_positive_int(v) for v in t.split(",")], default=[10, 20, 50, 100, 1000])
    p.add_argument("--no-ddpm", action="store_true", help="leave out the DDPM row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--out", default="eval-grid", help="writes OUT.md and OUT.json")

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
    p.add_argument("--repeats", type=_positive_int, default=10)
    return parser


def _train(args) -> None:
    from mnistdiff.train import train

    final = train(args.out, preset=args.preset, dataset=args.dataset, data_dir=args.data_dir, resume=args.resume,
                  minutes=args.minutes, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                  precision=args.precision, sample_every=args.sample_every,
                  checkpoint_every=args.checkpoint_every, fid_every=args.fid_every,
                  fid_images=args.fid_images, seed=args.seed)
    print(f"checkpoint: {final}")


def _generate(args) -> tuple:
    """Images from the checkpoint with the sampler arguments, and the checkpoint's config."""
    from mnistdiff import load_checkpoint
    from mnistdiff.generate import generate

    model, schedule, config = load_checkpoint(args.checkpoint, ema=not args.raw_weights)
    if args.sampler == "ddim" and args.steps > schedule.T:
        raise ValueError(f"--steps must be at most T={schedule.T}, got {args.steps}")
    images = generate(model, schedule, args.n, sampler=args.sampler, steps=args.steps, eta=args.eta,
                      spacing=args.spacing, clip_x0=not args.no_clip, seed=args.seed,
                      batch_size=args.batch_size, progress=True)
    return images, config


def _sample(args) -> None:
    from mnistdiff.images import grid, save_npz, save_png

    images, _ = _generate(args)
    save_png(args.out, grid(images))
    print(f"wrote {args.out}")
    if args.npz:
        save_npz(args.npz, images)
        print(f"wrote {args.npz}")


def _fid(args) -> None:
    import numpy as np
    import torch

    from mnistdiff.evaluation import evaluate

    dataset = args.dataset or "mnist"
    if args.npz:
        images = torch.from_numpy(np.load(args.npz)["images"])
        if images.dtype != torch.uint8 or images.shape[1:] != (1, 28, 28):
            raise ValueError(f"{args.npz}: expected uint8 images of shape (N, 1, 28, 28), got {tuple(images.shape)}")
    else:
        images, config = _generate(args)
        dataset = args.dataset or config["dataset"]
    result = evaluate(images, dataset, args.data_dir, seed=args.seed)
    print(f"images: {result['n']}")
    print(f"FID vs train: {result['fid_train']:.3f}   vs test: {result['fid_test']:.3f}   "
          f"(real train images vs test, same count: {result['floor_fid_test']:.3f})")
    print(f"precision: {result['precision']:.3f}   recall: {result['recall']:.3f}   "
          f"confident (p >= 0.9): {result['confident_share']:.3f}")
    print("class shares: " + " ".join(f"{c}:{share:.3f}" for c, share in enumerate(result["class_shares"])))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def _eval_grid(args) -> None:
    from mnistdiff import load_checkpoint
    from mnistdiff.evaluation.grid import eval_grid, to_markdown

    model, schedule, config = load_checkpoint(args.checkpoint)
    if max(args.steps) > schedule.T:
        raise ValueError(f"--steps must be at most T={schedule.T}")
    rows = eval_grid(model, schedule, n=args.n, dataset=config["dataset"], etas=args.etas, steps=args.steps,
                     ddpm=not args.no_ddpm, seed=args.seed, batch_size=args.batch_size)
    table = to_markdown(rows)
    Path(args.out + ".md").write_text(table)
    Path(args.out + ".json").write_text(json.dumps({"checkpoint": str(args.checkpoint), "rows": rows}, indent=2) + "\n")
    print(table)


def _export(args) -> None:
    import platform

    import torch

    from mnistdiff.train import checkpoint
    from mnistdiff.provenance import git_commit

    record = {"command": args.command_line, "commit": git_commit(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"}
    print(f"exported to {checkpoint.export(args.checkpoint, args.out, record)}")


def _plot_fid(args) -> None:
    from mnistdiff.evaluation.plots import plot_fid_curve
    from mnistdiff.train import checkpoint

    folder = Path(args.run) if args.run else checkpoint.DEFAULT_MODEL
    plot_fid_curve(folder / "fid.csv", args.out)
    print(f"wrote {args.out}")


def _train_classifier(args) -> None:
    from mnistdiff.evaluation.train_classifier import train_classifier

    record = train_classifier(args.out, args.dataset, args.data_dir, epochs=args.epochs, seed=args.seed,
                              command=args.command_line)
    print(f"test accuracy: {record['test_accuracy']:.4f}")


def _reference_stats(args) -> None:
    from mnistdiff.evaluation.reference import compute_reference

    record = compute_reference(args.out, args.dataset, args.data_dir, command=args.command_line)
    print(json.dumps(record, indent=2))


def _bench(args) -> None:
    from mnistdiff import bench
    from mnistdiff.diffusion import linear_schedule
    from mnistdiff.model import UNet, get_preset

    if args.what == "model":
        result = bench.bench_preset(args.preset, batch_size=args.batch_size, precision=args.precision,
                                    repeats=args.repeats)
    else:
        if args.checkpoint:
            from mnistdiff import load_checkpoint

            model, schedule, _ = load_checkpoint(args.checkpoint)
        else:  # timing does not depend on the weights
            model, schedule = UNet(get_preset(args.preset).unet).eval(), linear_schedule()
        result = bench.bench_sampling(model, schedule, ddim_steps=args.ddim_steps, batch_size=args.batch_size)
        result["model"] = args.checkpoint or args.preset
    print(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(argv)
        args.command_line = shlex.join(["mnistdiff", *argv])  # recorded beside shipped files
        if getattr(args, "checkpoint", None) and not Path(args.checkpoint).exists():
            raise FileNotFoundError(f"checkpoint {args.checkpoint} does not exist")
        commands = {"train": _train, "sample": _sample, "fid": _fid, "train-classifier": _train_classifier,
                    "reference-stats": _reference_stats, "bench": _bench, "eval-grid": _eval_grid,
                    "export": _export, "plot-fid": _plot_fid}
        commands[args.command](args)
    except (_UsageError, ValueError, FileNotFoundError, FileExistsError, DataFileError) as err:
        print(f"mnistdiff: error: {err}", file=sys.stderr)
        return 2
    except (Interrupted, KeyboardInterrupt) as err:
        print(f"mnistdiff: {err or 'interrupted'}", file=sys.stderr)
        return 130
    return 0
