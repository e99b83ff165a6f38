"""The report's inversion-merge ("2 + 5 = 8") in a Stable Diffusion pipeline's latent space.

Pictures go to latents with the VAE's mean latent (deterministic) times its scaling factor, then to
x_T by DDIM inversion with the prompt's text condition and no guidance, on the pipeline's own
timesteps (its scheduler config: timestep_spacing, steps_offset, set_alpha_to_one). Decoding runs
DDIM back over the same levels, then the VAE decoder.

    sd = load_stable_diffusion("path/to/stable-diffusion", prompt="a handwritten digit")
    images, labels = sd.pictures(["two.png", "five.png"])
    result = sd.merge(images[:1], images[1:], [0.0, 0.5, 1.0], rule="slerp", steps=50)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from mnistdiff.diffusion import Schedule
from mnistdiff.experiments.mixing import RULES, linear
from mnistdiff.external.diffusers import check_weights, eps_from, import_diffusers, quiet, read_json, read_scheduler
from mnistdiff.samplers import ddim_update, sample_ddim
from mnistdiff.samplers.common import alpha_bar, call, check_levels, progress_bar


class TextConditioned(nn.Module):
    """A UNet2DConditionModel under one prompt's embeddings as model(xt, t) -> eps (no guidance)."""

    def __init__(self, unet: nn.Module, embeddings: torch.Tensor, schedule: Schedule, prediction: str):
        super().__init__()
        self.unet, self.prediction = unet, prediction
        self.register_buffer("embeddings", embeddings, persistent=False)  # (1, tokens, width)
        self.register_buffer("alpha_bar", schedule.alpha_bar.clone(), persistent=False)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        condition = self.embeddings.expand(xt.shape[0], -1, -1).to(xt.dtype)
        out = self.unet(xt, t, encoder_hidden_states=condition).sample  # (B, 4, h, w)
        return eps_from(out, xt, self.alpha_bar[t], self.prediction)


def pipeline_levels(diffusers, scheduler_config: dict, steps: int) -> list[int]:
    """The pipeline's own DDIM timesteps for `steps` steps, descending, then the level it ends at:
    -1 (alpha_bar = 1) with set_alpha_to_one, else 0 (alpha_bar[0]), as DDIMScheduler steps."""
    scheduler = diffusers.DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(steps)
    grid = [int(t) for t in scheduler.timesteps]
    end = -1 if scheduler.config.set_alpha_to_one else 0
    return grid + [end] if end < grid[-1] else grid


@torch.no_grad()
def invert_latents(model, x: torch.Tensor, schedule: Schedule, levels: list[int], *, progress: bool = False):
    """Clean latents at levels[-1] to x_T at levels[0]: the eta = 0 update of Eq. 12 of Song et al. 2021
    run forwards, with eps evaluated at the level each step goes to, as diffusers' DDIMInverseScheduler
    (and null-text inversion) do: the reference the report's Stable Diffusion experiment ran on."""
    path = check_levels(levels, schedule.T)[::-1]
    with progress_bar(len(path) - 1, progress, "DDIM inversion") as bar:
        for t_from, t_to in zip(path, path[1:]):
            x = ddim_update(x, call(model, x, t_to), alpha_bar(schedule, t_from), alpha_bar(schedule, t_to))
            bar.update()
    return x


@dataclass
class StableDiffusion:
    """A loaded pipeline and one prompt's condition: encode, invert, decode and merge pictures."""

    pipe: object  # the diffusers StableDiffusionPipeline
    model: nn.Module  # TextConditioned: model(latents, t) -> eps
    schedule: Schedule
    prompt: str

    @property
    def device(self) -> torch.device:
        return self.pipe.vae.device

    def levels(self, steps: int) -> list[int]:
        return pipeline_levels(import_diffusers(), dict(self.pipe.scheduler.config), steps)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pictures (B, 3, H, W) in [-1, 1] -> the VAE's mean latents times its scaling factor (B, 4, H/8, W/8)."""
        vae = self.pipe.vae
        return vae.encode(images.to(self.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor

    @torch.no_grad()
    def invert(self, images: torch.Tensor, steps: int = 50, *, progress: bool = False) -> torch.Tensor:
        """Pictures (B, 3, H, W) in [-1, 1] -> latents x_T, by DDIM inversion in latent space."""
        return invert_latents(self.model, self.encode(images).float(), self.schedule, self.levels(steps),
                              progress=progress)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, steps: int = 50, *, progress: bool = False) -> torch.Tensor:
        """Latents x_T -> pictures (B, 3, H, W) in about [-1, 1]: DDIM back, then the VAE decoder."""
        vae = self.pipe.vae
        clean = sample_ddim(self.model, latents.to(self.device).float(), self.schedule, self.levels(steps),
                            progress=progress)
        return vae.decode(clean.to(vae.dtype) / vae.config.scaling_factor).sample.float()

    def merge(self, a: torch.Tensor, b: torch.Tensor, weights: list[float], *, rule: str = "linear",
              steps: int = 50) -> dict[str, torch.Tensor]:
        """What experiments.merge returns, for pictures a, b (B, 3, H, W) in [-1, 1]: the decoded
        reconstructions of a and b, and for each weight the decoded latent mix and the pixel mix."""
        if rule not in RULES:
            raise ValueError(f"unknown mixing rule {rule!r}: choose one of {', '.join(RULES)}")
        a, b = a.to(self.device), b.to(self.device)
        latents = self.invert(torch.cat([a, b]), steps)
        za, zb = latents.chunk(2)
        mixes = torch.cat([RULES[rule](za, zb, w) for w in weights])
        decoded = self.decode(torch.cat([latents, mixes]), steps)
        return {"recon_a": decoded[: len(a)], "recon_b": decoded[len(a) : 2 * len(a)],
                "latent_mix": decoded[2 * len(a) :].view(len(weights), *a.shape),
                "pixel_mix": torch.stack([linear(a, b, w) for w in weights])}

    def native_size(self) -> int:
        """The side of the pictures the pipeline was trained on (512 for Stable Diffusion 1.5)."""
        return self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor

    def pictures(self, specs: list[str], data_dir=None) -> tuple[torch.Tensor, list[str]]:
        """(B, 3, H, W) in [-1, 1] for PNG files (at the first picture's size, down to a multiple of the
        VAE's factor) or MNIST test-set indices (grey digits at the pipeline's native size), and labels."""
        from mnistdiff.experiments.inputs import fit, load_inputs

        pictures, labels, size = [], [], None
        for spec in specs:
            if spec.isdigit():
                digit, label = load_inputs([spec], data_dir=data_dir)
                size = size or (self.native_size(),) * 2
                pictures.append(fit(digit, (3, *size))[0])
            else:
                picture = read_picture(Path(spec), size, self.pipe.vae_scale_factor)
                size = size or tuple(picture.shape[1:])
                pictures.append(picture)
                label = [Path(spec).name]
            labels += label
        return torch.stack(pictures).float() / 127.5 - 1, labels


MAX_SIDE = 4096


def read_picture(path: Path, size: tuple[int, int] | None, factor: int) -> torch.Tensor:
    """A picture as uint8 (3, H, W): at `size`, or at its own size down to a multiple of `factor`."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        img = Image.open(path)
        if max(img.size) > MAX_SIDE:
            raise ValueError(f"{path}: {img.size[0]}x{img.size[1]} pixels is too large (at most {MAX_SIDE} a side)")
        img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None
    wanted = size[::-1] if size else (max(factor, img.width // factor * factor), max(factor, img.height // factor * factor))
    if img.size != wanted:
        print(f"note: {path.name} is {img.width}x{img.height}, resized to {wanted[0]}x{wanted[1]}", file=sys.stderr)
        img = img.resize(wanted, Image.LANCZOS)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


PARTS = (("unet", "UNet2DConditionModel", "diffusion_pytorch_model.safetensors", "diffusers"),
         ("vae", "AutoencoderKL", "diffusion_pytorch_model.safetensors", "diffusers"),
         ("text_encoder", "CLIPTextModel", "model.safetensors", "transformers"))


def load_stable_diffusion(path: str | Path, prompt: str = "", *, device: str | torch.device = "cpu",
                          precision: str = "fp32") -> StableDiffusion:
    """A StableDiffusionPipeline folder (safetensors weights only) on `device`, conditioned on `prompt`;
    `precision` runs the UNet (runtime.prepare), the VAE and text encoder staying fp32."""
    from mnistdiff.runtime import prepare

    folder = Path(path)
    diffusers = import_diffusers()
    index = read_json(folder / "model_index.json")
    for name, cls, weights, library in PARTS:
        if name not in index:
            raise ValueError(f"{folder / 'model_index.json'}: no {name}: not a Stable Diffusion pipeline")
        read_json(folder / name / "config.json")
        check_weights(folder / name, cls, weights, library)
    scheduler_path = folder / "scheduler" / "scheduler_config.json"
    schedule, prediction, _ = read_scheduler(diffusers, scheduler_path)
    try:
        with quiet():
            pipe = diffusers.StableDiffusionPipeline.from_pretrained(
                folder, use_safetensors=True, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False)
    except Exception as err:  # diffusers and transformers report bad folders with many error types
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        raise ValueError(f"{folder}: not a loadable Stable Diffusion pipeline ({lines[0][:300]})") from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        embeddings = pipe.encode_prompt(prompt, pipe.device, 1, False)[0].float()  # (1, tokens, width)
    model = TextConditioned(pipe.unet.eval().requires_grad_(False), embeddings, schedule, prediction).to(pipe.device)
    return StableDiffusion(pipe, prepare(model, precision=precision), schedule, prompt)
