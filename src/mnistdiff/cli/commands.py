"""What each subcommand does: call the library with the parsed arguments and print the result."""

from __future__ import annotations

import json
import os
from pathlib import Path


class Stopped(Exception):
    """Training that ended early, as the CLI reports it: the message and the exit status. (Training's own
    exceptions are caught here, so that the other commands never import the training package.)"""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def cmd_train(args) -> None:
    from mnistdiff.cli.arguments import train_settings
    from mnistdiff.training import Interrupted, NonFiniteLoss, train

    try:
        final = train(args.out, preset=args.preset, dataset=args.dataset, data_dir=args.data_dir, resume=args.resume,
                      init_from=args.init_from, minutes=args.minutes, device=args.device, compile=args.compile,
                      conditional=args.conditional, command=getattr(args, "command_line", None),
                      **train_settings(args))
    except NonFiniteLoss as err:
        raise Stopped(f"error: {err}", 2) from err
    except Interrupted as err:
        raise Stopped(str(err) or "interrupted", 130) from err
    if os.environ.get("RANK", "0") == "0":  # under torchrun, process 0 alone reports
        print(f"checkpoint: {final}")


def cmd_distill(args) -> None:
    from mnistdiff.cli.parser import DISTILL_SETTINGS
    from mnistdiff.distill import distill, progressive_rounds
    from mnistdiff.training import Interrupted, NonFiniteLoss

    settings = {name: getattr(args, name) for name in DISTILL_SETTINGS} | {
        "minutes": args.minutes, "data_dir": args.data_dir, "device": args.device, "compile": args.compile,
        "command": getattr(args, "command_line", None)}
    try:
        if args.down_to is None:
            final = distill(args.out, method=args.method, teacher=args.teacher, student_steps=args.student_steps,
                            levels=args.levels, trajectories=args.trajectories, own_states=args.own_states,
                            init_from=args.init_from, resume=args.resume, **settings)
        elif args.method != "progressive" or args.student_steps is None or args.init_from or args.trajectories \
                or args.own_states is not None:
            raise ValueError("--down-to goes on in rounds of progressive distillation: pass --method progressive "
                             "and --student-steps, the first round's, and no --init-from, --trajectories or "
                             "--own-states")
        else:
            final = progressive_rounds(args.out, student_steps=args.student_steps, down_to=args.down_to,
                                       teacher=args.teacher, resume=args.resume, **settings)
    except NonFiniteLoss as err:
        raise Stopped(f"error: {err}", 2) from err
    except Interrupted as err:
        raise Stopped(str(err) or "interrupted", 130) from err
    if os.environ.get("RANK", "0") == "0":
        print(f"checkpoint: {final}")


def cmd_trajectories(args) -> None:
    from mnistdiff.distill.trajectories import record

    out = record(args.out, teacher=args.checkpoint, n=args.n, steps=args.student_steps,
                 solver_steps=args.solver_steps, seed=args.seed, precision=args.precision, compile=args.compile)
    print(f"trajectories: {out}")


def load_model(args, ema: bool = True) -> tuple:
    """(model, schedule, config) of --checkpoint (or the shipped model), placed by `place_model`."""
    from mnistdiff import load_checkpoint

    model, schedule, config = load_checkpoint(args.checkpoint, ema=ema)
    return place_model(model, args), schedule, config


def place_model(model, args):
    """The model on --device, in the memory layout that runs it fastest, run with --precision and
    --compile (runtime.prepare): what every command that runs a model runs."""
    from mnistdiff.precision import pick_device, pick_precision
    from mnistdiff.runtime import memory_format, prepare

    device = pick_device(args.device)
    args.precision = pick_precision(args.precision, device.type)  # what ran, for the records and rows
    model = model.to(device, memory_format=memory_format(device, args.precision, args.compile))
    return prepare(model, precision=args.precision, compile=args.compile)


def sampler_options(args) -> dict:
    """The sampler options given on the command line (each sampler takes its own)."""
    return {name: getattr(args, name) for name in ("eta", "variance") if getattr(args, name) is not None}


MAX_IMAGES = 100_000  # more only with --yes: hours of sampling, and all of it held in memory


def generate_images(args, classified_by: str | None = None) -> tuple:
    """Images from the checkpoint with the sampler arguments, the checkpoint's config and the images'
    labels ((n,) int64, or None without --label); with `classified_by` (what reads them), only from a
    model that makes 1x28x28 digits. --label without --checkpoint samples the shipped conditional model."""
    from mnistdiff.generation import generate
    from mnistdiff.images import image_shape, require_digits
    from mnistdiff.samplers.guidance import classes, label_list

    if args.n > MAX_IMAGES and not args.yes:
        raise ValueError(f"--n {args.n:,} is more than {MAX_IMAGES:,} images: pass --yes if you mean it")
    if args.guidance is not None and args.label is None:
        raise ValueError("--guidance needs --label: the classes to guide towards")
    if args.label is not None and args.checkpoint is None:
        args.checkpoint = "conditional"
    model, schedule, config = load_model(args, ema=not args.raw_weights)
    if classified_by:
        require_digits(config, classified_by)
    labels = args.label
    if labels is not None:
        labels = label_list(list(range(classes(model))) if labels == "all" else labels, args.n, classes(model))
    images = generate(model, schedule, args.n, sampler=args.sampler, steps=args.steps, spacing=args.spacing,
                      t_end=args.t_end, clip_x0=False if args.no_clip else None, seed=args.seed,
                      batch_size=args.batch_size,
                      image_shape=image_shape(config), precision=args.precision, compile=args.compile, progress=True,
                      labels=labels, guidance=args.guidance, **sampler_options(args))
    return images, config, labels


def cmd_sample(args) -> None:
    from mnistdiff.images import grid, save_npz, save_png

    check_output(args.out, "--out")
    if args.npz:
        check_output(args.npz, "--npz")
    images, _, labels = generate_images(args)
    save_png(args.out, grid(images))
    print(f"wrote {args.out}")
    if args.npz:
        save_npz(args.npz, images, labels)
        print(f"wrote {args.npz}")


def cmd_fid(args) -> None:
    import numpy as np
    import torch

    from mnistdiff.evaluation import evaluate
    from mnistdiff.evaluation.report import check_count, worst_digit

    dataset = args.dataset or "mnist"
    if args.json:
        check_output(args.json, "--json")
    if args.inception:  # loaded first, to fail now rather than after sampling
        from mnistdiff.evaluation.inception import find_weights, load_inception

        inception = load_inception(find_weights(args.inception_weights))
    if args.npz:
        from mnistdiff.experiments.inputs import load_array

        sampling = [flag for flag, given in (("--sampler", args.sampler), ("--steps", args.steps), ("--eta", args.eta),
                    ("--variance", args.variance), ("--spacing", args.spacing), ("--t-end", args.t_end),
                    ("--label", args.label), ("--guidance", args.guidance), ("--no-clip", args.no_clip or None),
                    ("--raw-weights", args.raw_weights or None)) if given is not None]
        if sampling:
            raise ValueError(f"--npz scores the images it holds; {', '.join(sampling)} set how images are sampled")
        images = torch.from_numpy(load_array(args.npz, "images", (None, 1, 28, 28), np.uint8))
        labels = load_array(args.npz, "labels", (len(images),), np.integer, optional=True)
        labels = None if labels is None else torch.from_numpy(labels).long()
    else:
        check_count(args.n)  # before minutes of sampling
        images, config, labels = generate_images(args, classified_by="fid")
        dataset = args.dataset or config["dataset"]
    result = evaluate(images, dataset, args.data_dir, seed=args.seed, requested=labels)
    print(f"images: {result['n']}")
    print(f"FID vs train: {result['fid_train']:.3f}   vs test: {result['fid_test']:.3f}   "
          f"(real train images vs test, same count: {result['floor_fid_test']:.3f}; over "
          f"{result['floor_spread']['draws']} disjoint draws {result['floor_spread']['min']:.3f} to "
          f"{result['floor_spread']['max']:.3f})")
    print(f"precision: {result['precision']:.3f}   recall: {result['recall']:.3f}   "
          f"confident (p >= 0.9): {result['confident_share']:.3f}")
    print("class shares: " + " ".join(f"{c}:{share:.3f}" for c, share in enumerate(result["class_shares"])))
    if labels is not None:
        worst, share = worst_digit(result["accuracy_by_digit"])
        print(f"read as the digit asked for: {result['accuracy']:.4f}   worst digit: {worst} ({share:.3f})")
    if args.inception:
        from mnistdiff import data
        from mnistdiff.evaluation.inception import inception_fid

        real, _ = data.load(dataset, "test", args.data_dir)
        result["inception_fid_test"] = inception_fid(inception, images, real[: len(images)])
        print(f"Inception FID vs {min(len(images), len(real))} test images: {result['inception_fid_test']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def cmd_eval_grid(args) -> None:
    from mnistdiff.evaluation.grid import eval_grid, to_markdown
    from mnistdiff.images import require_digits

    check_outputs(args.out, ".md", ".json")
    model, schedule, config = load_model(args)
    require_digits(config, "eval-grid")
    if max(args.steps) > schedule.T:
        raise ValueError(f"--steps must be at most T={schedule.T}")
    rows = eval_grid(model, schedule, n=args.n, dataset=config["dataset"], etas=args.etas, steps=args.steps,
                     ddpm=not args.no_ddpm, seed=args.seed, batch_size=args.batch_size, precision=args.precision,
                     compile=args.compile, clip_x0=not args.no_clip)
    write_results(args.out, to_markdown(rows), {"checkpoint": str(args.checkpoint), "rows": rows})


def cmd_nfe_curve(args) -> None:
    from mnistdiff.evaluation.grid import CURVES, nfe_curve, nfe_markdown
    from mnistdiff.evaluation.plots import plot_nfe_curve
    from mnistdiff.evaluation.report import real_floor
    from mnistdiff.images import require_digits

    check_outputs(args.out, ".md", ".json", ".png")
    model, schedule, config = load_model(args)
    require_digits(config, "nfe-curve")
    floor = real_floor(args.n, config["dataset"], args.data_dir)
    rows = nfe_curve(model, schedule, n=args.n, dataset=config["dataset"], nfes=args.nfes,
                     curves=args.curves or CURVES, seed=args.seed, batch_size=args.batch_size,
                     precision=args.precision, compile=args.compile, clip_x0=not args.no_clip)
    markdown = nfe_markdown(rows) + f"\nReal training images at the same count: {floor:.3f}\n"
    write_results(args.out, markdown, {"checkpoint": str(args.checkpoint), "command": args.command_line,
                                       "floor_fid_test": floor, "rows": rows})
    plot_nfe_curve(rows, args.out + ".png", floor)


def check_output(path: str, what: str) -> None:
    """Before long work: the file can be written (its folder exists and is writable; it is no folder)."""
    from mnistdiff.files import check_output as check

    check(path, what)


def check_outputs(out: str, *suffixes: str) -> None:
    for suffix in suffixes:
        check_output(out + suffix, "--out")


def write_results(out: str, markdown: str, record: dict) -> None:
    """OUT.md and OUT.json side by side, and the table on stdout."""
    Path(out + ".md").write_text(markdown)
    Path(out + ".json").write_text(json.dumps(record, indent=2) + "\n")
    print(markdown)


def cmd_export(args) -> None:
    from mnistdiff.provenance import git_commit, machine
    from mnistdiff.training import checkpoint

    record = {"command": args.command_line, "commit": git_commit(), "machine": machine()}
    if args.note:
        record["note"] = args.note
    print(f"exported to {checkpoint.export(args.checkpoint, args.out, record, base=args.base)}")


def cmd_plot_fid(args) -> None:
    from mnistdiff.evaluation.plots import plot_fid_curve
    from mnistdiff.loading import DEFAULT_MODEL

    folder = Path(args.run) if args.run else DEFAULT_MODEL
    plot_fid_curve(folder / "fid.csv", args.out)
    print(f"wrote {args.out}")


def cmd_train_classifier(args) -> None:
    from mnistdiff.evaluation.train_classifier import train_classifier

    record = train_classifier(args.out, args.dataset, args.data_dir, epochs=args.epochs, seed=args.seed,
                              command=args.command_line)
    print(f"test accuracy: {record['test_accuracy']:.4f}")


def cmd_reference_stats(args) -> None:
    from mnistdiff.evaluation.reference import compute_reference

    record = compute_reference(args.out, args.dataset, args.data_dir, command=args.command_line)
    print(json.dumps(record, indent=2))


def cmd_bench(args) -> None:
    from mnistdiff import bench
    from mnistdiff.diffusion import linear_schedule
    from mnistdiff.model import UNet, get_preset
    from mnistdiff.precision import pick_device

    if args.what == "model":  # bench_preset resolves --precision auto for the device
        result = bench.bench_preset(args.preset, batch_size=args.batch_size, precision=args.precision,
                                    repeats=args.repeats, device=pick_device(args.device), compile=args.compile)
    else:
        if args.checkpoint:
            model, schedule, _ = load_model(args)
        else:  # timing does not depend on the weights
            schedule = linear_schedule()
            model = place_model(UNet(get_preset(args.preset).unet).eval(), args)
        result = bench.bench_sampling(model, schedule, ddim_steps=args.ddim_steps, batch_size=args.batch_size,
                                      precision=args.precision, compile=args.compile)
        result["model"] = args.checkpoint or args.preset
    print(json.dumps(result, indent=2))
