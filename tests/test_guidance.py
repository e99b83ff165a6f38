"""Classifier-free guidance on a conditional model known in closed form: what every sampler receives,
what it costs, and generate()'s labels."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from mnistdiff.data import to_uint8
from mnistdiff.diffusion import linear_schedule
from mnistdiff.generation import generate
from mnistdiff.runtime import Runner
from mnistdiff.samplers import DEFAULT_GUIDANCE, SAMPLERS, Guided, ddim_invert, levels, sampler_levels

SCHEDULE = linear_schedule(20)  # few levels, so DDPM's every step is cheap
CLASSES = 10
SHAPE = (1, 4, 4)


class ClassGaussians(nn.Module):
    """The exact eps for data x0 ~ N(mu_c, std^2) per pixel given the label c, and for a separate
    Gaussian N(mu_null, std^2) given "no label" (label CLASSES); std = 0: one point per class.
    Records each call's batch size and labels."""

    def __init__(self, std: float = 0.3, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.means = torch.rand((CLASSES + 1, *SHAPE), generator=g, dtype=torch.float64) * 2 - 1  # (K+1, C, H, W)
        self.std = std
        self.config = SimpleNamespace(classes=CLASSES)
        self.weight = nn.Parameter(torch.zeros(()))  # generate() places noise where the weights are
        self.calls: list[tuple[int, torch.Tensor | None]] = []

    def exact(self, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ab = SCHEDULE.alpha_bar[t].view(-1, 1, 1, 1)
        mean = self.means[labels]
        return (1 - ab).sqrt() * (xt.double() - ab.sqrt() * mean) / (ab * self.std**2 + 1 - ab)

    def forward(self, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append((xt.shape[0], labels))
        if labels is None:
            labels = torch.full((xt.shape[0],), CLASSES)
        return self.exact(xt, t, labels).to(xt.dtype)


class Recorder:
    """What a sampler receives: each call's xt, t and returned eps."""

    def __init__(self, model):
        self.model, self.seen = model, []

    def __call__(self, xt, t):
        eps = self.model(xt, t)
        self.seen.append((xt.clone(), t.clone(), eps.clone()))
        return eps


def run_sampler(name: str, model, batch: int = 4, steps: int = 6):
    """SAMPLERS[name] from seeded noise over `steps` evaluations (DDPM: all T levels)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn((batch, *SHAPE), generator=g, dtype=torch.float64)
    grid = sampler_levels(name, None if getattr(SAMPLERS[name], "every_step", False) else steps, SCHEDULE)
    return SAMPLERS[name](model, x, SCHEDULE, grid, generator=g)


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0, 2.0, 4.0])
def test_every_sampler_receives_the_guided_eps(name, scale):
    """eps = eps_null + s (eps_c - eps_null) at each call, from one call of the doubled batch (or one
    plain call at s = 1 and s = 0)."""
    model = ClassGaussians()
    labels = torch.tensor([7, 2, 5, 0])
    recorder = Recorder(Guided(model, labels, scale))
    run_sampler(name, recorder)
    assert recorder.seen and len(model.calls) == len(recorder.seen)
    null = torch.full_like(labels, CLASSES)
    for xt, t, eps in recorder.seen:
        eps_c, eps_null = model.exact(xt, t, labels), model.exact(xt, t, null)
        torch.testing.assert_close(eps, eps_null + scale * (eps_c - eps_null), rtol=1e-12, atol=1e-12)
    sizes = {b for b, _ in model.calls}
    assert sizes == ({4} if scale in (0.0, 1.0) else {8})
    for _, seen in model.calls:
        expected = {1.0: labels, 0.0: null}.get(scale, torch.cat([labels, null]))
        assert torch.equal(seen, expected)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_scale_one_is_the_conditional_model_itself(name):
    model, plain = ClassGaussians(), ClassGaussians()
    labels = torch.tensor([3, 3, 9, 1])
    guided = run_sampler(name, Guided(model, labels, 1.0))
    direct = run_sampler(name, lambda xt, t: plain(xt, t, labels=labels))
    assert torch.equal(guided, direct)
    assert model.calls and all(b == 4 for b, _ in model.calls)


def test_no_labels_is_one_plain_call():
    model = ClassGaussians()
    run_sampler("ddim", Guided(model, None, 3.0), steps=5)
    assert [(b, seen) for b, seen in model.calls] == [(4, None)] * 5


def guided_point(model: ClassGaussians, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """With one point per class, eps_null + s (eps_c - eps_null) is linear in the points: the exact eps
    of the single point s mu_c + (1 - s) mu_null, which DDIM (eta = 0) reaches from any noise."""
    return scale * model.means[labels] + (1 - scale) * model.means[CLASSES]


def test_inversion_runs_guided_too():
    """ddim_invert takes the guided model as any other: invert-then-sample gives back the guided point."""
    model = ClassGaussians(std=0.0)
    labels = torch.tensor([4, 8])
    x0 = guided_point(model, labels, 2.0)
    grid = levels(10, SCHEDULE)
    guided = Guided(model, labels, 2.0)
    latent = ddim_invert(guided, x0, SCHEDULE, grid)
    torch.testing.assert_close(SAMPLERS["ddim"](guided, latent, SCHEDULE, grid), x0, rtol=0, atol=1e-9)
    assert {b for b, _ in model.calls} == {4}


def test_guided_calls_cost_one_doubled_batch_per_evaluation():
    model = ClassGaussians()
    run_sampler("heun", Guided(model, torch.arange(4), 2.0), steps=7)
    assert [b for b, _ in model.calls] == [8] * 7  # heun's 7 evaluations for 4 steps, each one call of 2B


@pytest.mark.parametrize("scale", [1.0, 1.5, 3.0])
def test_generate_with_labels_draws_each_guided_point(scale):
    """One point per class: DDIM (eta = 0) returns each image's guided point exactly, image i getting
    labels[i % len] across batches."""
    model = ClassGaussians(std=0.0)
    images = generate(model, SCHEDULE, 23, steps=10, batch_size=7, image_shape=SHAPE, labels=range(10),
                      guidance=scale, clip_x0=False)
    assert torch.equal(images, to_uint8(guided_point(model, torch.arange(23) % 10, scale).float()))


def test_generate_takes_an_int_a_list_or_a_tensor_and_defaults_the_scale(monkeypatch):
    model = ClassGaussians(std=0.0)
    one = generate(model, SCHEDULE, 3, steps=4, image_shape=SHAPE, labels=6)
    assert torch.equal(one, generate(model, SCHEDULE, 3, steps=4, image_shape=SHAPE, labels=[6]))
    assert torch.equal(one, generate(model, SCHEDULE, 3, steps=4, image_shape=SHAPE, labels=torch.tensor([6, 6, 6]),
                                     guidance=DEFAULT_GUIDANCE))
    assert not torch.equal(one, generate(model, SCHEDULE, 3, steps=4, image_shape=SHAPE, labels=6, guidance=1.0))


def test_generate_without_labels_is_todays_unconditional_run():
    """labels None: the same noise and plain model(xt, t) calls as a direct sampler loop."""
    model = ClassGaussians()
    images = generate(model, SCHEDULE, 10, sampler="ddim", steps=5, batch_size=4, image_shape=SHAPE, seed=3)
    assert all(seen is None for _, seen in model.calls)
    grid = sampler_levels("ddim", 5, SCHEDULE)
    direct = []
    for k, start in enumerate(range(0, 10, 4)):
        g = torch.Generator().manual_seed(3 + k)
        x = torch.randn((min(4, 10 - start), *SHAPE), generator=g)
        direct.append(to_uint8(SAMPLERS["ddim"](model, x, SCHEDULE, grid, generator=g, clip_x0=True)))
    assert torch.equal(images, torch.cat(direct))


@pytest.mark.parametrize("kwargs, words", [
    ({"labels": 10}, "label 10 is outside 0..9"),
    ({"labels": [1, -1]}, "label -1 is outside 0..9"),
    ({"labels": [1.5]}, "labels must be whole numbers in 0..9"),
    ({"labels": []}, "labels must be whole numbers in 0..9"),
    ({"labels": True}, "labels must be whole numbers in 0..9"),
    ({"labels": 3, "guidance": float("nan")}, "guidance must be a finite number >= 0"),
    ({"labels": 3, "guidance": float("inf")}, "guidance must be a finite number >= 0"),
    ({"labels": 3, "guidance": -0.5}, "guidance must be a finite number >= 0"),
    ({"guidance": 2.0}, "guidance needs labels"),
])
def test_generate_refuses_bad_labels_and_guidance(kwargs, words):
    model = ClassGaussians()
    with pytest.raises(ValueError, match=words.replace(".", r"\.")) as err:
        generate(model, SCHEDULE, 2, steps=2, image_shape=SHAPE, **kwargs)
    assert "\n" not in str(err.value) and not model.calls


def test_labels_on_an_unconditional_model_are_refused():
    unconditional = nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match="labels need a conditional model"):
        generate(unconditional, SCHEDULE, 2, steps=2, image_shape=SHAPE, labels=3)
    with pytest.raises(ValueError, match="labels need a conditional model"):
        Guided(unconditional, torch.tensor([1]), 2.0)


def test_compiled_runner_pads_labels_with_no_label():
    """The compiled path pads a smaller batch to the largest seen: the padded rows get "no label".
    (The padding is exercised on the eager model: compiling would only make it slower.)"""
    model = ClassGaussians()
    runner = Runner(model)
    runner.compiled = True
    x = torch.randn((4, *SHAPE), dtype=torch.float64)
    t = torch.full((4,), 10)
    runner(x, t, labels=torch.tensor([1, 2, 3, 4]))
    out = runner(x[:2], t[:2], labels=torch.tensor([5, 6]))
    assert model.calls[-1][0] == 4 and model.calls[-1][1].tolist() == [5, 6, CLASSES, CLASSES]
    torch.testing.assert_close(out, model.exact(x[:2], t[:2], torch.tensor([5, 6])))
    runner(x[:2], t[:2])
    assert model.calls[-1][1] is None  # no labels: none passed on


def test_sample_label_all_writes_balanced_labels_to_the_npz(tmp_path, monkeypatch):
    from mnistdiff.cli import commands, main

    model = ClassGaussians(std=0.0)
    config = {"unet": {"in_channels": 1, "image_size": 4}}
    asked = []
    monkeypatch.setattr(commands, "load_model", lambda args, ema=True: asked.append(args.checkpoint) or
                        (model, SCHEDULE, config))
    npz, png = tmp_path / "s.npz", tmp_path / "s.png"
    assert main(["sample", "--label", "all", "--guidance", "1", "--no-clip", "--n", "12", "--steps", "3",
                 "--npz", str(npz), "--out", str(png)]) == 0
    assert asked == ["conditional"]  # --label without --checkpoint: the shipped conditional model
    saved = np.load(npz)
    assert saved["labels"].dtype == np.int64 and saved["labels"].tolist() == [*range(10), 0, 1]
    expected = guided_point(model, torch.from_numpy(saved["labels"]), 1.0)
    assert np.array_equal(saved["images"], to_uint8(expected.float()).numpy())
    assert main(["sample", "--label", "2,5", "--n", "3", "--steps", "2", "--npz", str(npz), "--out", str(png)]) == 0
    assert np.load(npz)["labels"].tolist() == [2, 5, 2]
    assert main(["sample", "--n", "2", "--steps", "2", "--npz", str(npz), "--out", str(png), "--checkpoint", "."]) == 0
    assert "labels" not in np.load(npz)


def test_guidance_above_one_samples_without_clipping_unless_asked():
    """clip_x0 None: the predicted x0 is clipped to [-1, 1] unguided and up to s = 1, not above (the
    DDIM x0 predicted at high noise leaves [-1, 1] here, so clipping changes the images)."""
    from mnistdiff.samplers.guidance import clips

    assert clips(None) and clips(0.0) and clips(1.0) and not clips(1.5)
    model = ClassGaussians()
    run = dict(sampler="ddim", steps=6, image_shape=SHAPE, labels=range(10), seed=2)
    guided = generate(model, SCHEDULE, 10, guidance=1.5, **run)
    assert torch.equal(guided, generate(model, SCHEDULE, 10, guidance=1.5, clip_x0=False, **run))
    assert not torch.equal(guided, generate(model, SCHEDULE, 10, guidance=1.5, clip_x0=True, **run))
    plain = generate(model, SCHEDULE, 10, guidance=1.0, **run)
    assert torch.equal(plain, generate(model, SCHEDULE, 10, guidance=1.0, clip_x0=True, **run))
