"""Subcommands of the inversion experiments: invert, merge, figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mnistdiff import data
from mnistdiff.cli.commands import check_output, check_outputs, load_model, write_results
from mnistdiff.data import to_model_range, to_uint8
from mnistdiff.evaluation import load_classifier, load_reference
from mnistdiff.experiments import figures
from mnistdiff.experiments.inputs import fit, input_classes, load_array, load_inputs
from mnistdiff.experiments.merge import merge
from mnistdiff.images import grid, image_shape, require_digits, save_png
from mnistdiff.samplers import DEFAULT_GUIDANCE, ddim_invert, levels, sample_ddim
from mnistdiff.samplers.guidance import classes


def _model_and_levels(args):
    """(model, schedule, config, DDIM levels of --steps, device): the model placed by --device,
    --precision and --compile."""
    model, schedule, config = load_model(args)
    return model, schedule, config, levels(args.steps, schedule), next(model.parameters()).device


def _inputs(args, device, config: dict, count: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """The images named on the command line, in the model's range and shape."""
    if count is not None and len(args.images) != count:
        raise ValueError(f"{args.command} {getattr(args, 'kind', '')} needs {count} image(s), got {len(args.images)}")
    images, labels = load_inputs(args.images, data_dir=args.data_dir)
    return to_model_range(fit(images, image_shape(config))).to(device), labels


def _stable_diffusion(args) -> bool:
    """Whether --checkpoint is a Stable Diffusion pipeline, which invert and merge run in its latent space."""
    from mnistdiff.external.diffusers import is_stable_diffusion_folder

    if is_stable_diffusion_folder(args.checkpoint):
        return True
    if args.prompt is not None:
        raise ValueError("--prompt is the text condition of a Stable Diffusion pipeline; this --checkpoint has none")
    return False


def cmd_invert(args) -> None:
    check_output(args.out, "--out")
    suffix, what = (".png", "a PNG grid") if args.decode else (".npz", "an .npz of latents")
    if Path(args.out).suffix.lower() != suffix:
        raise ValueError(f"--out {args.out}: {what} is written: give a name ending in {suffix}")
    if _stable_diffusion(args):
        from mnistdiff.cli.diffusers_commands import cmd_invert_latent

        return cmd_invert_latent(args)
    model, schedule, config, grid_levels, device = _model_and_levels(args)
    if args.decode:
        side = config["unet"]["image_size"]
        shape = (None, config["unet"]["in_channels"], side, side)
        latents = torch.from_numpy(load_array(args.decode, "latents", shape, np.floating)).float().to(device)
        save_png(args.out, grid(to_uint8(sample_ddim(model, latents, schedule, grid_levels, progress=True))))
    else:
        if not args.images:
            raise ValueError("invert needs images (test-set indices or PNG files), or --decode LATENTS.npz")
        x0, labels = _inputs(args, device, config)
        latents = ddim_invert(model, x0, schedule, grid_levels, progress=True, iterations=args.inversion_iterations)
        np.savez(args.out, latents=latents.cpu().numpy(), labels=np.array(labels), levels=np.array(grid_levels))
    print(f"wrote {args.out}")


def _guided_checkpoint(args) -> None:
    """--guidance only with --target; --target without --checkpoint: the shipped conditional model."""
    if args.guidance is not None and args.target is None:
        raise ValueError("--guidance needs --target: the class to decode towards")
    if args.target is not None and args.checkpoint is None:
        args.checkpoint = "conditional"


def _inversion_labels(args, model, config: dict, specs: list[str]) -> tuple | None:
    """(label of A, label of B) to invert with, by --invert-with: by default, on a conditional model,
    the label of each test-set image (None, "no label", for a PNG file); None for no labels at all."""
    if args.invert_with == "none" or (args.invert_with is None and not classes(model)):
        return None
    if not classes(model):
        raise ValueError("--invert-with labels needs a conditional model; this one is unconditional")
    known = input_classes(specs, config["dataset"], args.data_dir)
    unknown = [spec for spec, c in zip(specs, known) if c is None]
    if args.invert_with == "labels" and unknown:
        raise ValueError(f"--invert-with labels: {unknown[0]} has no known label (test-set indices have one)")
    return None if len(unknown) == len(specs) else tuple(known)


def cmd_merge(args) -> None:
    check_output(args.out, "--out")
    _guided_checkpoint(args)
    if _stable_diffusion(args):
        from mnistdiff.cli.diffusers_commands import cmd_merge_latent

        if args.target is not None or args.invert_with is not None:
            raise ValueError("--target and --invert-with need a class-conditional model, not a Stable Diffusion "
                             "pipeline")
        return cmd_merge_latent(args)
    model, schedule, config, grid_levels, device = _model_and_levels(args)
    args.images = [args.a, args.b]
    x, labels = _inputs(args, device, config, 2)
    inversion = _inversion_labels(args, model, config, args.images)
    result = merge(model, schedule, x[:1], x[1:], args.weights, rule=args.rule, levels=grid_levels,
                   iterations=args.inversion_iterations, labels=inversion, target=args.target,
                   guidance=args.guidance)
    rows = figures.merge_rows(labels, x[:1], x[1:], result, args.weights, args.rule)
    title = f"{labels[0]} + {labels[1]}, DDIM-{args.steps} inversion"
    title += f" refined, K = {args.inversion_iterations}" if args.inversion_iterations else ""
    if inversion:
        title += " with labels " + " and ".join("none" if c is None else str(c) for c in inversion)
    if args.target is not None:
        scale = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
        title += f"; mixes decoded towards {args.target}, s = {scale:g}"
    figures.panel_figure(rows, args.out, title=title)
    print(f"wrote {args.out}")


def cmd_figure(args) -> None:
    check_outputs(args.out, ".png", ".gif")
    model, schedule, config, grid_levels, device = _model_and_levels(args)
    if args.kind == "forward":
        x, labels = _inputs(args, device, config, 1)
        show = figures.forward_timesteps(schedule.T)
        figures.panel_figure(figures.forward_and_back(model, schedule, x, show, grid_levels), args.out + ".png",
                             title=f"{labels[0]}: forward process and DDIM-{args.steps} path back")
        print(f"wrote {args.out}.png")
        return
    if args.kind == "interpolate":
        x, _ = _inputs(args, device, config, 2)
        frames = figures.interpolation(model, schedule, x[:1], x[1:], grid_levels, args.frames)
        save_png(args.out + ".png", grid(frames, nrow=len(frames)), scale=3)
        pictures = [grid(f[None], pad=0) for f in frames]
        figures.save_gif(pictures + pictures[-2:0:-1], args.out + ".gif", ms=150, scale=6)  # there and back
    else:
        x_T = torch.randn((args.n, *image_shape(config)), generator=torch.Generator().manual_seed(args.seed)).to(device)
        frames, panel = figures.trajectory(model, schedule, x_T, grid_levels)
        figures.panel_figure(panel, args.out + ".png", title=f"DDIM-{args.steps}: x_t and the predicted x0")
        figures.save_gif(frames, args.out + ".gif", ms=80)
    print(f"wrote {args.out}.png and {args.out}.gif")


def cmd_reconstruction(args) -> None:
    from mnistdiff.experiments.reconstruction import reconstruction_errors, to_markdown

    check_outputs(args.out, ".md", ".json")
    model, schedule, config = load_model(args)
    images, _ = data.load(config["dataset"], "test", args.data_dir)
    x0 = to_model_range(fit(images[: args.n], image_shape(config))).to(next(model.parameters()).device)
    rows = reconstruction_errors(model, schedule, x0, args.steps, iterations=args.inversion_iterations)
    write_results(args.out, to_markdown(rows), {"rows": rows})


def cmd_merge_study(args) -> None:
    from mnistdiff.experiments.merge_study import merge_study, to_markdown

    if args.target is not None:
        return _guided_merge_study(args)
    if args.guidance is not None or args.pair is not None or args.invert_with is not None:
        raise ValueError("--guidance, --pair and --invert-with go with --target (the guided study of one pair)")
    check_outputs(args.out, ".md", ".json", ".png")
    model, schedule, config, grid_levels, device = _model_and_levels(args)
    require_digits(config, "merge-study")
    images, labels = data.load(config["dataset"], "test", args.data_dir)
    classifier, _ = load_classifier(config["dataset"])
    study = merge_study(model, schedule, images.to(device), labels, classifier,
                        load_reference(config["dataset"])["test"], grid_levels, per_class=args.per_class, weight=args.weight, seed=args.seed,
                        iterations=args.inversion_iterations)
    figures.merge_heatmaps(study, args.out + ".png")
    write_results(args.out, to_markdown(study), study)


def _guided_merge_study(args) -> None:
    from mnistdiff.experiments.guided_study import SCALES, guided_merge_study, to_markdown

    check_outputs(args.out, ".md", ".json")
    _guided_checkpoint(args)
    model, schedule, config, grid_levels, device = _model_and_levels(args)
    require_digits(config, "merge-study")
    images, labels = data.load(config["dataset"], "test", args.data_dir)
    classifier, _ = load_classifier(config["dataset"])
    study = guided_merge_study(model, schedule, images.to(device), labels, classifier, grid_levels,
                               pair=args.pair or (2, 5), target=args.target, scales=args.guidance or SCALES,
                               invert_with=args.invert_with or "labels", per_class=args.per_class,
                               weight=args.weight, seed=args.seed, iterations=args.inversion_iterations)
    study = {"command": getattr(args, "command_line", None)} | study
    write_results(args.out, to_markdown(study), study)
