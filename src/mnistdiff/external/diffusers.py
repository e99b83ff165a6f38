"""Models saved by diffusers, run by our samplers: a UNet2DModel behind model(xt, t) -> eps.

A folder is either a pipeline (model_index.json, unet/, scheduler/) or a bare UNet2DModel
(config.json and diffusion_pytorch_model.safetensors, with scheduler_config.json beside them or in
scheduler/). Weights are read from safetensors only: a .bin file is a pickle, and unpickling runs
whatever code the file holds.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mnistdiff.diffusion import Schedule

INSTALL = "pip install 'mnistdiff[diffusers]'"
WEIGHTS = "diffusion_pytorch_model.safetensors"
PREDICTIONS = ("epsilon", "v_prediction", "sample")
CONVERT = ("python -c \"import {library}; m = {library}.{cls}.from_pretrained('{folder}', use_safetensors=False); "
           "m.save_pretrained('{folder}', safe_serialization=True)\" (only for a file you trust: it runs the pickle)")


def import_diffusers():
    """The diffusers module, or a one-line error that says what to install."""
    try:
        import diffusers
    except ImportError:
        raise ValueError(f"this is a diffusers model folder: reading it needs diffusers ({INSTALL})") from None
    return diffusers


@contextlib.contextmanager
def quiet():
    """diffusers' and transformers' loading bars and notes off, for one load (errors still raise)."""
    from diffusers.utils import logging

    loggers = [logging]
    try:
        from transformers.utils import logging as transformers_logging

        loggers.append(transformers_logging)
    except ImportError:  # only Stable Diffusion's text encoder needs transformers
        pass
    levels = [log.get_verbosity() for log in loggers]
    for log in loggers:
        log.set_verbosity_error()
        log.disable_progress_bar()
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.set_verbosity(level)
            log.enable_progress_bar()


def read_json(path: Path) -> dict:
    """A JSON object, or a one-line error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a diffusers model folder needs it)")
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a JSON object")
    return value


def is_diffusers_folder(path: str | Path | None) -> bool:
    """Whether `path` is a folder that diffusers wrote: a pipeline's or a model's (its config.json
    names a diffusers class). Reads two small JSON files at most and imports nothing."""
    if path is None or not Path(path).is_dir():
        return False
    folder = Path(path)
    if (folder / "model_index.json").is_file():
        return True
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(config, dict) and "_diffusers_version" in config


def is_stable_diffusion_folder(path: str | Path | None) -> bool:
    """Whether `path` is a latent text-to-image pipeline: model_index.json with a vae and a text encoder."""
    if not is_diffusers_folder(path) or not (Path(path) / "model_index.json").is_file():
        return False
    index = read_json(Path(path) / "model_index.json")
    return "vae" in index and "text_encoder" in index


def check_weights(folder: Path, cls: str, name: str = WEIGHTS, library: str = "diffusers") -> None:
    """Refuse a model folder without safetensors weights, saying how to convert a .bin one."""
    stem = name.rsplit(".", 1)[0]
    if (folder / name).is_file() or (folder / f"{name}.index.json").is_file():
        return
    pickles = [folder / f"{stem}.bin", folder / f"{stem}.bin.index.json"]
    found = next((p for p in pickles if p.is_file()), None)
    if found is not None:
        raise ValueError(f"{found}: pickled weights, which mnistdiff never loads (unpickling runs code); convert "
                         f"them to {name} with " + CONVERT.format(library=library, cls=cls, folder=folder))
    raise FileNotFoundError(f"{folder / name}: missing (no weights in {folder})")


def load_part(diffusers, folder: Path, cls: str, weights: str = WEIGHTS):
    """One model of a diffusers folder (a UNet, a VAE), from safetensors, in eval mode; errors in one
    line naming the file."""
    config = read_json(folder / "config.json")
    if config.get("_class_name") != cls:
        raise ValueError(f"{folder / 'config.json'}: a {config.get('_class_name', 'model of no named class')}, "
                         f"expected a {cls}")
    check_weights(folder, cls, weights)
    try:
        with quiet():
            model, info = getattr(diffusers, cls).from_pretrained(folder, use_safetensors=True,
                                                                  output_loading_info=True)
    except Exception as err:  # diffusers reports bad shapes and damaged files with many error types
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        raise ValueError(f"{folder / weights}: cannot be loaded into the {cls} its config.json describes "
                         f"({lines[0][:300]})") from None
    # diffusers only warns of these, and would leave missing layers at their random start.
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            raise ValueError(f"{folder / weights}: does not fit the {cls} its config.json describes "
                             f"({len(info[kind])} {kind.replace('_', ' ')}, e.g. {info[kind][0]})")
    return model.eval().requires_grad_(False)


def read_scheduler(diffusers, path: Path, config: dict | None = None) -> tuple[Schedule, str, dict]:
    """(schedule, prediction type, config) of a scheduler_config.json (or of `config`, read from it):
    betas as the scheduler computes them (linear, scaled_linear, squaredcos_cap_v2, trained_betas over
    num_train_timesteps)."""
    config = read_json(path) if config is None else config
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise ValueError(f"{path}: prediction_type {prediction!r} is not one of {', '.join(PREDICTIONS)}")
    if config.get("rescale_betas_zero_snr"):
        raise ValueError(f"{path}: rescale_betas_zero_snr makes alpha_bar reach 0 at T - 1, where eps is not "
                         "defined; mnistdiff's samplers need alpha_bar > 0 at every level")
    try:
        with quiet():
            scheduler = diffusers.DDPMScheduler.from_config(config)  # the same betas as DDIM's, PNDM's, ...
    except Exception as err:
        raise ValueError(f"{path}: {str(err).splitlines()[0][:300] if str(err) else type(err).__name__}") from None
    betas = scheduler.betas.double()
    return Schedule(betas, torch.cumprod(1.0 - betas, dim=0)), prediction, dict(config)


def eps_from(out: torch.Tensor, xt: torch.Tensor, alpha_bar: torch.Tensor, prediction: str) -> torch.Tensor:
    """eps from what a network predicts at x_t = sqrt(ab) x0 + sqrt(1 - ab) eps; alpha_bar (B,)."""
    if prediction == "epsilon":
        return out
    ab = alpha_bar.to(out.dtype).view(-1, *([1] * (out.dim() - 1)))
    if prediction == "v_prediction":  # v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022)
        return ab.sqrt() * out + (1 - ab).sqrt() * xt.to(out.dtype)
    return (xt.to(out.dtype) - ab.sqrt() * out) / (1 - ab).sqrt()  # out is x0


@dataclass(frozen=True)
class ImageShape:
    """What a sampler draws for a model: as our UNet's config, in_channels and a square image_size."""

    in_channels: int
    image_size: int


class DiffusersEps(nn.Module):
    """A diffusers UNet2DModel as model(xt, t) -> eps, whatever the scheduler says it predicts; a UNet
    with twice the image's channels (a learned variance) gives eps from its first half."""

    def __init__(self, unet: nn.Module, schedule: Schedule, prediction: str):
        super().__init__()
        self.unet, self.prediction = unet, prediction
        self.register_buffer("alpha_bar", schedule.alpha_bar.clone(), persistent=False)
        self.config = ImageShape(unet.config.in_channels, image_side(unet.config.sample_size))

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.unet(xt, t).sample[:, : xt.shape[1]]  # (B, C, H, W)
        return eps_from(out, xt, self.alpha_bar[t], self.prediction)


def image_side(sample_size) -> int:
    """The side of a square sample_size (an int, or a pair of equal ints)."""
    if isinstance(sample_size, (list, tuple)):
        if len(set(sample_size)) != 1:
            raise ValueError(f"sample_size {list(sample_size)}: mnistdiff draws square images only")
        return int(sample_size[0])
    return int(sample_size)


def unet_and_scheduler(folder: Path) -> tuple[Path, Path]:
    """Where a folder keeps its UNet and its scheduler_config.json."""
    if (folder / "model_index.json").is_file():
        index = read_json(folder / "model_index.json")
        if "vae" in index:
            raise ValueError(f"{folder / 'model_index.json'}: a latent text-to-image pipeline "
                             f"({index.get('_class_name')}): `mnistdiff invert` and `mnistdiff merge` take it "
                             "(see docs/diffusers.md); the other commands need a pixel-space UNet2DModel")
        if "unet" not in index:
            raise ValueError(f"{folder / 'model_index.json'}: the pipeline has no unet")
        return folder / "unet", folder / "scheduler" / "scheduler_config.json"
    beside = folder / "scheduler_config.json"
    return folder, beside if beside.is_file() else folder / "scheduler" / "scheduler_config.json"


def load_diffusers(path: str | Path) -> tuple[nn.Module, Schedule, dict]:
    """(model, schedule, config) of a diffusers pipeline or UNet2DModel folder, as load_checkpoint
    gives: model(xt, t) -> eps in eval mode, the scheduler's betas in float64, and a config with the
    image shape under "unet" and "dataset" mnist (whose test set gives the experiments' inputs)."""
    folder = Path(path)
    diffusers = import_diffusers()
    unet_folder, scheduler_path = unet_and_scheduler(folder)
    if not (unet_folder / "config.json").is_file():
        raise FileNotFoundError(f"{unet_folder / 'config.json'}: missing (a diffusers model folder needs it)")
    if not scheduler_path.is_file():
        raise FileNotFoundError(f"{scheduler_path}: missing (the betas and what the UNet predicts come from it)")
    schedule, prediction, scheduler_config = read_scheduler(diffusers, scheduler_path)
    unet = load_part(diffusers, unet_folder, "UNet2DModel")
    model = DiffusersEps(unet, schedule, prediction)
    if unet.config.out_channels not in (unet.config.in_channels, 2 * unet.config.in_channels):
        raise ValueError(f"{unet_folder / 'config.json'}: out_channels {unet.config.out_channels} is neither "
                         f"in_channels {unet.config.in_channels} nor twice it")
    config = {
        "source": "diffusers", "folder": str(folder), "dataset": "mnist", "preset": "diffusers",
        "unet": {"in_channels": model.config.in_channels, "image_size": model.config.image_size},
        "prediction_type": prediction, "T": schedule.T,
        "diffusers": {"unet": dict(unet.config), "scheduler": scheduler_config},
    }
    return model, schedule, config


def weights_file(folder: str | Path) -> Path:
    """The UNet weights of a diffusers folder (what the report's cache keys on)."""
    unet_folder, _ = unet_and_scheduler(Path(folder))
    return unet_folder / WEIGHTS
