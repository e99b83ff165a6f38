"""invert and merge on a Stable Diffusion pipeline: the report's experiment in its latent space."""

from __future__ import annotations

import numpy as np
import torch

from mnistdiff.data import to_uint8
from mnistdiff.experiments import figures
from mnistdiff.experiments.inputs import load_array
from mnistdiff.images import grid, save_png


def _load(args):
    from mnistdiff.external.stable_diffusion import load_stable_diffusion
    from mnistdiff.precision import pick_device

    return load_stable_diffusion(args.checkpoint, prompt=args.prompt or "", device=pick_device(args.device),
                                 precision=args.precision)


def cmd_invert_latent(args) -> None:
    sd = _load(args)
    if args.decode:
        channels = sd.pipe.unet.config.in_channels
        latents = torch.from_numpy(load_array(args.decode, "latents", (None, channels, None, None), np.floating))
        save_png(args.out, grid(to_uint8(sd.decode(latents.float(), args.steps, progress=True))))
    else:
        if not args.images:
            raise ValueError("invert needs pictures (PNG files or test-set indices), or --decode LATENTS.npz")
        images, labels = sd.pictures(args.images, data_dir=args.data_dir)
        latents = sd.invert(images, args.steps, progress=True)
        np.savez(args.out, latents=latents.cpu().numpy(), labels=np.array(labels),
                 levels=np.array(sd.levels(args.steps)), prompt=np.array(sd.prompt))
    print(f"wrote {args.out}")


def cmd_merge_latent(args) -> None:
    sd = _load(args)
    x, labels = sd.pictures([args.a, args.b], data_dir=args.data_dir)
    result = sd.merge(x[:1], x[1:], args.weights, rule=args.rule, steps=args.steps)
    rows = figures.merge_rows(labels, x[:1], x[1:], {k: v.cpu() for k, v in result.items()}, args.weights, args.rule)
    prompt = f', prompt "{sd.prompt}"' if sd.prompt else ", empty prompt"
    figures.panel_figure(rows, args.out, title=f"{labels[0]} + {labels[1]}, DDIM-{args.steps} inversion in "
                                               f"Stable Diffusion's latent space{prompt}")
    print(f"wrote {args.out}")
