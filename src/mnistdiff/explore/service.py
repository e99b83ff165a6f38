"""What the explorer does, in plain Python: invert, decode, mix, sample and read digits.

Images cross this boundary as flat lists of 784 uint8 values (28x28, white digit on black, as
MNIST); tensors stay inside. With a class-conditional model, sampling and the mix's decoding take a
label (0..classes-1, or None for none) and a classifier-free guidance scale; inversion always runs
with no label, so a digit's latent does not depend on the label picked for the decode.

With a distilled student of the model (by default the shipped one, "fast", beside the shipped model),
sampling may take the "student" sampler and the mix may decode with the student's few calls
(`fast`). Inversion always runs the teacher: a student follows no ODE that can be walked back.

Every public method holds one lock while it runs the model, so requests that arrive together are
served one model call at a time and never see each other's tensors.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from mnistdiff.data import to_model_range, to_uint8
from mnistdiff.diffusion import Schedule
from mnistdiff.experiments import mixing
from mnistdiff import samplers
from mnistdiff.samplers import ddim_invert, levels, sample_ddim
from mnistdiff.samplers.common import distilled_method, distilled_steps
from mnistdiff.samplers.ddim import check_eta
from mnistdiff.samplers.guidance import DEFAULT_GUIDANCE, Guided, check_guidance, classes, clips

SIDE = 28
RULES = (*mixing.RULES, "pixel")  # "pixel" mixes the images themselves, as the merge study's baseline
# The registry's names when the page is served, DDIM first: the page offers the first one; STUDENT
# samples with the explorer's student, where it has one.
STUDENT = "student"
SAMPLERS = ("ddim", *(name for name in samplers.SAMPLERS if name != "ddim"), STUDENT)
MAX_STEPS = 200
MAX_IMAGES = 64
MAX_WORK = MAX_STEPS * MAX_IMAGES  # model evaluations times images in one request (DDPM runs all T)
WEIGHTS = (-1.0, 2.0)
GUIDANCE = (0.0, 5.0)  # the guidance scales a request may ask for: 0 is the unconditional model, 1 the conditional
GUIDANCE_STEP = 0.5  # the page's slider
STRIP = 10  # frames of a trajectory strip, besides the result
# ddim_invert's refinement: K iterations cost (1 + K) model calls a step. With 2, DDIM-10 decodes a
# test digit back with MSE 0.0003 instead of plain inversion's 0.038 (docs/experiments.md).
INVERSION_ITERATIONS = 2


# The one place that calls the samplers: decoding and inversion are deterministic DDIM (Song et al.
# 2021); decoding inverted latents does not clip x0 (see experiments.merge), sampling does unless
# guidance above 1 pushes x0 out of range (samplers.guidance.clips).
def _invert(model, schedule: Schedule, x0: torch.Tensor, steps: int, iterations: int) -> torch.Tensor:
    return ddim_invert(model, x0, schedule, levels(steps, schedule), iterations=iterations)


def _decode(model, schedule: Schedule, x_T: torch.Tensor, steps: int) -> torch.Tensor:
    return sample_ddim(model, x_T, schedule, levels(steps, schedule))


def _sample(model, schedule: Schedule, x_T: torch.Tensor, sampler: str, steps: int, eta: float,
            generator: torch.Generator, clip_x0: bool) -> torch.Tensor:
    fn = samplers.SAMPLERS[sampler]
    options = {"eta": eta} if "eta" in inspect.signature(fn).parameters else {}  # the page sends eta to any sampler
    grid = samplers.sampler_levels(sampler, None if getattr(fn, "every_step", False) else steps, schedule)
    return fn(model, x_T, schedule, grid, clip_x0=clip_x0, generator=generator, **options)


def _student_sample(student, schedule: Schedule, x_T: torch.Tensor, steps: int | None,
                    generator: torch.Generator, clip_x0: bool, recorder=None) -> torch.Tensor:
    """A distilled student's own sampler over its own grid (generation.student_sampler), `steps` at most
    the steps it was distilled for (None: all of them); through `recorder`, a _Recorder of it, if given."""
    from mnistdiff.generation import student_sampler

    fn, grid = student_sampler(student, steps, schedule)
    return fn(recorder or student, x_T, schedule, grid, clip_x0=clip_x0, generator=generator)


class _Recorder:
    """Wraps model(xt, t) -> eps and keeps, for the first image of the batch, x_t at each call and
    the x0 it predicts there (Eq. 4 of Ho et al. 2020 inverted): any sampler's trajectory."""

    def __init__(self, model, schedule: Schedule):
        self.model, self.schedule, self.frames = model, schedule, []

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.model(xt, t)
        level = int(t[0])
        ab = float(self.schedule.alpha_bar[level])
        x0 = (xt[:1] - math.sqrt(1 - ab) * eps[:1].to(xt.dtype)) / math.sqrt(ab)
        self.frames.append((level, xt[:1].cpu(), x0.cpu()))
        return eps


def pixels(x: torch.Tensor) -> list[int]:
    """One image in [-1, 1] (1, 28, 28) -> 784 uint8 values, row by row."""
    return to_uint8(x).flatten().tolist()


def as_image(values: Sequence[int]) -> torch.Tensor:
    """784 values in 0..255 -> uint8 (1, 28, 28); anything else is a ValueError."""
    if len(values) != SIDE * SIDE:
        raise ValueError(f"an image is {SIDE * SIDE} values (28x28), got {len(values)}")
    if any(not isinstance(v, int) or not 0 <= v <= 255 for v in values):
        raise ValueError("image values must be whole numbers in 0..255")
    return torch.tensor(values, dtype=torch.uint8).view(1, SIDE, SIDE)


def _conditioned(model, label: int | None, guidance: float | None, n: int):
    """`model` guided towards `label` with scale `guidance` (None: DEFAULT_GUIDANCE) for a batch of n,
    or the model itself without a label; a ValueError for a label or scale out of range."""
    if label is None:
        if guidance is not None:
            raise ValueError("guidance needs a label: the digit to guide towards")
        return model
    count = classes(model)
    if count < 1:
        raise ValueError("labels need a conditional model; this one is unconditional")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < count:
        raise ValueError(f"label must be a whole number in 0..{count - 1}, or none, got {label!r}")
    scale = check_guidance(DEFAULT_GUIDANCE if guidance is None else guidance)
    if not GUIDANCE[0] <= scale <= GUIDANCE[1]:
        raise ValueError(f"guidance must be in {GUIDANCE[0]:g}..{GUIDANCE[1]:g}, got {scale:g}")
    device = next(model.parameters()).device
    return Guided(model, torch.full((n,), label, dtype=torch.long, device=device), scale)


def _check(steps: int, weight: float | None = None, rule: str | None = None) -> None:
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in 1..{MAX_STEPS}, got {steps}")
    if weight is not None and not (WEIGHTS[0] <= weight <= WEIGHTS[1]):
        raise ValueError(f"weight must be in {WEIGHTS[0]}..{WEIGHTS[1]}, got {weight}")
    if rule is not None and rule not in RULES:
        raise ValueError(f"unknown mixing rule {rule!r}: choose one of {', '.join(RULES)}")


class Explorer:
    """A model, its schedule and the digit classifier, with a cache of inverted latents.

    digits: optional (images uint8 (N, 1, 28, 28), labels (N,)) offered by the picker.
    inversion_iterations: the refinement of each DDIM inversion step (samplers.ddim_invert).
    student: a distilled student of the model, for the "student" sampler and the mix's fast decode.
    """

    def __init__(self, model, schedule: Schedule, classifier, digits: tuple[torch.Tensor, torch.Tensor] | None = None,
                 *, name: str = "", note: str = "", cache_size: int = 256,
                 inversion_iterations: int = INVERSION_ITERATIONS, student=None):
        if inversion_iterations < 0:
            raise ValueError(f"inversion_iterations must be >= 0, got {inversion_iterations}")
        if student is not None and not distilled_steps(student):
            raise ValueError("student: not a distilled student (its config has no distilled_steps)")
        self.inversion_iterations, self.student = inversion_iterations, student
        self.model, self.schedule, self.classifier = model, schedule, classifier
        self.device = next(model.parameters()).device
        self.digit_images, self.digit_labels = digits if digits is not None else (None, None)
        self.name, self.note, self.cache_size = name, note, cache_size
        self._lock = threading.Lock()
        self._latents: OrderedDict[tuple[str, int], torch.Tensor] = OrderedDict()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None = None, *, data_dir: str | Path | None = None,
                        device: str = "auto", inversion_iterations: int = INVERSION_ITERATIONS,
                        student: str | Path | None = "fast") -> Explorer:
        """The checkpoint's model (default: the shipped one) on `device`, its data set's classifier, and
        the test set for the picker when it is on disk (never downloaded). `student`: a distilled student
        of that model; "fast", the shipped student, only beside the shipped model and where it is shipped."""
        from mnistdiff import load_checkpoint
        from mnistdiff.data.idx import DataFileError, read_split
        from mnistdiff.data.locate import find_split
        from mnistdiff.evaluation import load_classifier
        from mnistdiff.images import require_digits
        from mnistdiff.precision import pick_device

        target = pick_device(device)
        model, schedule, config = load_checkpoint(checkpoint)
        if distilled_steps(model):
            raise ValueError(f"--checkpoint {checkpoint} is a distilled student: the explorer inverts images with its "
                             "model; give the student's teacher as --checkpoint and the student as --student")
        require_digits(config, "explore")  # the page draws and reads 28x28 grey digits
        classifier, _ = load_classifier(config["dataset"])
        digits, note = None, ""
        try:
            images, labels = read_split(*find_split(config["dataset"], "test", data_dir, download=False))
            digits = torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype("int64"))
        except DataFileError as err:
            if data_dir or os.environ.get("MNISTDIFF_DATA"):
                raise
            note = f"no test digits to pick from ({err})"
        name = str(checkpoint) if checkpoint else "the shipped model"
        fast = _load_student(student, checkpoint)
        return cls(model.to(target), schedule, classifier.to(target), digits, name=f"{name} ({config['dataset']})",
                   note=note, inversion_iterations=inversion_iterations,
                   student=fast.to(target) if fast is not None else None)

    def info(self) -> dict:
        return {"model": self.name, "device": str(self.device), "T": self.schedule.T, "rules": list(RULES),
                "samplers": list(SAMPLERS), "max_steps": MAX_STEPS, "max_images": MAX_IMAGES,
                "weights": list(WEIGHTS), "digits": 0 if self.digit_images is None else len(self.digit_images),
                "note": self.note, "classes": classes(self.model),
                "guidance": {"min": GUIDANCE[0], "max": GUIDANCE[1], "step": GUIDANCE_STEP,
                             "default": DEFAULT_GUIDANCE},
                "student": None if self.student is None else {
                    "steps": distilled_steps(self.student), "method": distilled_method(self.student)}}

    def digits(self, start: int, count: int) -> list[dict]:
        """Test digits start..start + count: index, label and pixels."""
        if self.digit_images is None:
            return []
        stop = min(start + count, len(self.digit_images))
        return [{"index": i, "label": int(self.digit_labels[i]), "pixels": self.digit_images[i].flatten().tolist()}
                for i in range(start, stop)]

    def read(self, x: torch.Tensor) -> list[dict]:
        """The classifier's digit and confidence for each image in [-1, 1] (B, 1, 28, 28)."""
        probs = self.classifier(x.to(self.device)).softmax(1)
        confidence, digit = probs.max(1)
        return [{"digit": int(d), "confidence": round(float(c), 4)} for d, c in zip(digit, confidence)]

    def _latent(self, image: torch.Tensor, steps: int) -> torch.Tensor:
        """The DDIM latent of a uint8 image (1, 28, 28), cached by the image's hash and steps."""
        key = (hashlib.sha256(image.numpy().tobytes()).hexdigest(), steps)  # one refinement per explorer
        if key in self._latents:
            self._latents.move_to_end(key)
            return self._latents[key]
        latent = _invert(self.model, self.schedule, to_model_range(image[None]).to(self.device), steps,
                         self.inversion_iterations)
        self._latents[key] = latent
        if len(self._latents) > self.cache_size:
            self._latents.popitem(last=False)
        return latent

    def _decode(self, latent: torch.Tensor, steps: int, trajectory: bool, model=None,
                fast: bool = False) -> tuple[torch.Tensor, list | None]:
        """DDIM-`steps` of `model` (default: the explorer's), or with `fast` the student `model` in its own calls."""
        model = model or self.model
        recorder = _Recorder(model, self.schedule) if trajectory else None
        if fast:
            generator = torch.Generator(device=self.device).manual_seed(0)
            x0 = _student_sample(model, self.schedule, latent, None, generator, False, recorder)
        else:
            x0 = _decode(recorder or model, self.schedule, latent, steps)
        return x0, strip(recorder.frames, x0) if recorder else None

    @torch.no_grad()
    def invert(self, image: Sequence[int], steps: int, trajectory: bool = False) -> dict:
        """Invert an image with DDIM-`steps` and decode it back: the reconstruction, its per-pixel MSE
        on [0, 1], and the classifier's reading of both."""
        _check(steps)
        u8 = as_image(image)
        with self._lock:
            x0 = to_model_range(u8[None])
            recon, frames = self._decode(self._latent(u8, steps), steps, trajectory)
            recon = recon.cpu()
            mse = float(((recon.clamp(-1, 1) - x0) / 2).pow(2).mean())
            readings = self.read(torch.cat([x0, recon]))
        return {"reconstruction": pixels(recon[0]), "mse": round(mse, 6), "input_reading": readings[0],
                "reading": readings[1], "trajectory": frames}

    def _student(self) -> torch.nn.Module:
        if self.student is None:
            raise ValueError("this explorer has no student: start it with --student PATH (a model made by "
                             "`mnistdiff distill` from this one)")
        return self.student

    @torch.no_grad()
    def mix(self, a: Sequence[int], b: Sequence[int], rule: str, weight: float, steps: int,
            trajectory: bool = False, label: int | None = None, guidance: float | None = None,
            fast: bool = False) -> dict:
        """Mix two images with weight w of b: their DDIM latents by `rule` and decode, or with
        rule "pixel" the images themselves. The inversions are cached, so a new weight only decodes.
        With a conditional model, `label` and `guidance` guide the decode towards that digit. `fast`
        decodes with the student in its own few calls (the inversion stays the teacher's DDIM-`steps`)."""
        _check(steps, weight, rule)
        if fast and label is not None:
            raise ValueError("the student is unconditional: a fast decode takes no label")
        decoder = self._student() if fast else _conditioned(self.model, label, guidance, 1)
        a8, b8 = as_image(a), as_image(b)
        with self._lock:
            if rule == "pixel":
                mixed = mixing.linear(to_model_range(a8[None]), to_model_range(b8[None]), weight).clamp(-1, 1)
                frames = None
            else:
                latent = mixing.RULES[rule](self._latent(a8, steps), self._latent(b8, steps), weight)
                mixed, frames = self._decode(latent, steps, trajectory, decoder, fast)
            mixed = mixed.cpu()
            reading = self.read(mixed)[0]
        return {"image": pixels(mixed[0]), "reading": reading, "weight": weight, "rule": rule, "trajectory": frames}

    @torch.no_grad()
    def sample(self, seed: int, sampler: str, steps: int, eta: float, n: int, trajectory: bool = False,
               label: int | None = None, guidance: float | None = None) -> dict:
        """n images from noise seeded with `seed`; the trajectory is the first image's. With a
        conditional model, all n drawn for `label` with classifier-free guidance `guidance`."""
        _check(steps)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if not 1 <= n <= MAX_IMAGES:
            raise ValueError(f"n must be in 1..{MAX_IMAGES}, got {n}")
        check_eta(eta)
        if sampler == STUDENT and label is not None:
            raise ValueError("the student is unconditional: it samples without a label")
        model = self._student() if sampler == STUDENT else _conditioned(self.model, label, guidance, n)
        doubled = 2 if isinstance(model, Guided) and model.scale not in (0, 1) else 1  # one call of 2n images
        evaluations = steps if sampler == STUDENT else samplers.steps_taken(sampler, steps, self.schedule.T)
        if evaluations * n * doubled > MAX_WORK:
            raise ValueError(f"{sampler} with {evaluations} model evaluations for {n} images"
                             f"{' (doubled by guidance)' if doubled == 2 else ''} is more than "
                             f"{MAX_WORK} image-evaluations: ask for fewer images or steps")
        with self._lock:
            generator = torch.Generator(device=self.device).manual_seed(seed)
            x_T = torch.randn((n, 1, SIDE, SIDE), generator=generator, device=self.device)
            recorder = _Recorder(model, self.schedule) if trajectory else None
            if sampler == STUDENT:
                x0 = _student_sample(model, self.schedule, x_T, steps, generator, True, recorder).cpu()
            else:
                x0 = _sample(recorder or model, self.schedule, x_T, sampler, steps, eta, generator,
                             clip_x0=clips(model.scale if isinstance(model, Guided) else None)).cpu()
            readings = self.read(x0)
        return {"images": [pixels(x) for x in x0], "readings": readings,
                "trajectory": strip(recorder.frames, x0[:1]) if recorder else None}


def _load_student(student: str | Path | None, checkpoint: str | Path | None):
    """The student to serve beside `checkpoint`'s model: None for none; "fast" is the shipped model's
    shipped student, left out beside any other model or where it is not shipped."""
    from mnistdiff import load_checkpoint
    from mnistdiff.loading import shipped

    if student is None or (student == "fast" and (checkpoint is not None or not shipped("fast"))):
        return None
    return load_checkpoint(student)[0]


def strip(frames: list, result: torch.Tensor) -> list[dict]:
    """At most STRIP evenly spaced frames (t, x_t, predicted x0), then the result at t = -1."""
    keep = sorted({round(i * (len(frames) - 1) / (STRIP - 1)) for i in range(STRIP)}) if len(frames) > STRIP \
        else range(len(frames))
    out = [{"t": frames[i][0], "xt": pixels(frames[i][1][0]), "x0": pixels(frames[i][2][0])} for i in keep]
    return out + [{"t": -1, "xt": pixels(result[0].cpu()), "x0": pixels(result[0].cpu())}]
