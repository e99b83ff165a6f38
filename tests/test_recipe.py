"""The training recipe's levers: level weights and densities, EDM preconditioning, and old checkpoints."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from exact import GaussianData
from mnistdiff import load_checkpoint, loading
from mnistdiff.diffusion import EdmLoss, EpsLoss, MinSnrLoss, draw_levels, level_density, linear_schedule, training_loss
from mnistdiff.generation import generate
from mnistdiff.model import EDMPreconditioning, UNet, get_preset, precondition
from mnistdiff.samplers import SAMPLERS, default_steps
from mnistdiff.training import train

SCHEDULE = linear_schedule()
OLD = Path(__file__).parent / "data" / "tiny-old-checkpoint"  # written by the code before preconditioning
EDM = Path(__file__).parent / "data" / "tiny-edm-checkpoint"  # written by the code before the EDM wrapper


def best_scale(model, perturbation, loss_fn: EpsLoss, seed=0) -> float:
    """The c minimising loss_fn(model + c * perturbation) on one draw of x0, t and eps (the loss is
    quadratic in c; three values fix it)."""
    std, mean = 0.5, 0.3
    x0 = mean + std * torch.randn((4096, 1, 2, 2), generator=torch.Generator().manual_seed(seed))

    def loss(c):
        shifted = lambda xt, t: model(xt, t) + c * perturbation(xt, t)  # noqa: E731
        return loss_fn(shifted, SCHEDULE, x0, generator=torch.Generator().manual_seed(seed + 1)).double()

    l0, l1, l2 = loss(0.0), loss(1.0), loss(2.0)
    a = (l2 - 2 * l1 + l0) / 2
    return float(-(l1 - l0 - a) / (2 * a))


@pytest.mark.parametrize("recipe", ["plain", "min-snr-5", "lognormal", "edm+lognormal", "min-snr-5+stratified",
                                    "lognormal+stratified"])
def test_every_recipe_has_its_minimum_at_the_true_eps(recipe):
    exact = GaussianData(SCHEDULE, 0.3, 0.5)  # E[eps | x_t] of this data, in closed form
    draws = {"density": level_density(SCHEDULE, "lognormal") if "lognormal" in recipe else None,
             "stratified": "stratified" in recipe}
    loss_fn = {"min-snr-5": MinSnrLoss(gamma=5, **draws), "edm": EdmLoss(**draws)}.get(recipe.split("+")[0],
                                                                                       EpsLoss(**draws))
    exact32 = lambda xt, t: exact(xt, t).float()  # noqa: E731
    # Moving the prediction along eps itself, or along x_t, only raises the loss: its minimum is c = 0.
    for direction in (exact32, lambda xt, t: xt):
        assert abs(best_scale(exact32, direction, loss_fn)) < 0.03


@pytest.mark.parametrize("density", [None, level_density(SCHEDULE, "lognormal")], ids=["uniform", "lognormal"])
def test_stratified_levels_take_one_draw_per_slice_and_keep_the_density(density):
    gen = torch.Generator().manual_seed(0)
    probs = torch.full((SCHEDULE.T,), 1 / SCHEDULE.T, dtype=torch.float64) if density is None else density
    cdf = probs.cumsum(0)
    for n in (8, 64):
        t = draw_levels(SCHEDULE, n, density, stratified=True, generator=gen)
        assert t.dtype == torch.long and t.min() >= 0 and t.max() < SCHEDULE.T
        # Level t stands for the probabilities [P(T' < t), P(T' <= t)); the k-th lowest draw's
        # interval meets the k-th slice [k/n, (k + 1)/n) of them.
        t = t.sort().values
        k = torch.arange(n, dtype=torch.float64)
        assert ((cdf[t] - probs[t]) < (k + 1) / n).all() and (cdf[t] > k / n).all()
    # Over many batches each level is drawn as often as the density says (alone, any draw is one).
    draws = torch.cat([draw_levels(SCHEDULE, 64, density, stratified=True, generator=gen) for _ in range(500)])
    counts = torch.bincount(draws // 100, minlength=10).double() / len(draws)
    expected = probs.view(10, 100).sum(1)
    assert (counts - expected).abs().max() < 0.01
    plain = draw_levels(SCHEDULE, 64 * 500, density, stratified=False, generator=gen)
    assert (torch.bincount(plain // 100, minlength=10).double() / len(plain) - expected).abs().max() < 0.01


def test_lognormal_density_is_edms_on_the_levels_with_a_uniform_share():
    density = level_density(SCHEDULE, "lognormal", mean=-1.2, std=1.2, uniform_share=0.2)
    assert density.shape == (SCHEDULE.T,) and abs(density.sum().item() - 1) < 1e-9
    assert (density >= 0.2 / SCHEDULE.T).all()  # every level, t near T included, keeps its uniform share
    # Without the uniform share, log sigma of the drawn levels is normal: median P_mean, P_std apart.
    pure = level_density(SCHEDULE, "lognormal", mean=-1.2, std=1.2, uniform_share=0.0).cumsum(0)
    log_sigma = 0.5 * torch.log((1 - SCHEDULE.alpha_bar) / SCHEDULE.alpha_bar)
    quantile = lambda q: log_sigma[int(torch.searchsorted(pure, torch.tensor(q, dtype=torch.float64)))].item()  # noqa: E731
    assert abs(quantile(0.5) - (-1.2)) < 0.05
    assert abs(quantile(0.8413) - quantile(0.1587) - 2 * 1.2) < 0.1
    assert level_density(SCHEDULE, "uniform") is None
    with pytest.raises(ValueError, match="level density"):
        level_density(SCHEDULE, "beta")


def test_the_patch_preset_draws_the_middle_levels_most():
    recipe = get_preset("patch").train
    density = level_density(SCHEDULE, recipe.level_density, recipe.level_mean, recipe.level_std,
                            recipe.level_uniform)
    share = lambda lo, hi: density[lo:hi].sum().item()  # noqa: E731
    # docs/training.md: 62% of the draws at t = 300 to 699 (uniform: 40%), 12.5% below 200, 14% from 700.
    assert 0.61 < share(300, 700) < 0.63 and 0.12 < share(0, 200) < 0.13 and 0.13 < share(700, 1000) < 0.15
    assert recipe.level_draw == "stratified" and recipe.min_snr_gamma == get_preset("small").train.min_snr_gamma


def test_edm_preconditioning_is_edms_formula_and_its_loss_is_the_plain_mse_of_f():
    torch.manual_seed(0)
    network = UNet(replace(get_preset("tiny").unet, preconditioning="edm", sigma_data=0.5)).double().eval()
    seen = {}

    def spy(x, t):
        seen["input"], seen["f"] = x, network(x, t)
        return seen["f"]

    spy.config = network.config
    model = precondition(spy, SCHEDULE.alpha_bar).double()
    assert isinstance(model, EDMPreconditioning) and precondition(network, SCHEDULE.alpha_bar) is not network
    x0 = torch.rand((4, 1, 28, 28), dtype=torch.float64) * 2 - 1
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 250, 700, 999])
    ab = model.alpha_bar[t].view(-1, 1, 1, 1)  # the schedule as the model holds it (fp32 values)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # q_sample on those values
    out = model(xt, t)

    sigma, sd = ((1 - ab) / ab).sqrt(), 0.5
    x = xt / ab.sqrt()  # EDM's variable: x0 + sigma eps
    c_in, c_skip = 1 / (sigma**2 + sd**2).sqrt(), sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
    torch.testing.assert_close(seen["input"], c_in * x, rtol=1e-6, atol=1e-6)
    denoised = c_skip * x + c_out * seen["f"]
    torch.testing.assert_close(out, (x - denoised) / sigma, rtol=1e-5, atol=1e-6)
    # EDM's weighted |D - x0|^2 is the plain MSE of F against its target, and our eps weights say the same.
    target = (x0 - c_skip * x) / c_out
    f_mse = (seen["f"] - target).pow(2).flatten(1).mean(1)
    weight = ((sigma**2 + sd**2) / sd**2).flatten()  # EdmLoss's weights, for the model's fp32 alpha_bar
    torch.testing.assert_close(EdmLoss(sigma_data=sd).weights(SCHEDULE)[t], weight, rtol=1e-3, atol=0)
    eps_weighted = weight * (out - eps).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(eps_weighted, f_mse, rtol=1e-5, atol=1e-9)


def test_a_plain_model_is_not_wrapped_and_edm_refuses_min_snr():
    network = UNet(get_preset("tiny").unet)
    assert precondition(network, SCHEDULE.alpha_bar) is network
    with pytest.raises(ValueError, match="unknown preconditioning"):
        replace(get_preset("tiny").unet, preconditioning="edn")
    with pytest.raises(ValueError, match="min-snr"):
        training_loss("edm", min_snr_gamma=5)


def test_a_new_recipe_checkpoint_samples_through_every_sampler(idx_folder, tmp_path):
    run = tmp_path / "run"
    train(run, preset="tiny", data_dir=idx_folder, steps=20, progress=False, preconditioning="edm",
          level_density="lognormal", lr_decay="cosine")
    model, schedule, config = load_checkpoint(run)
    assert config["unet"]["preconditioning"] == "edm" and config["train"]["level_density"] == "lognormal"
    for name in SAMPLERS:
        steps = default_steps(name, schedule.T) if name == "ddpm" else 10
        images = generate(model, schedule, 3, sampler=name, steps=steps, seed=0, progress=False)
        assert images.shape == (3, 1, 28, 28) and images.dtype == torch.uint8
        assert images.float().std() > 0  # not a blank page
    with pytest.raises(ValueError, match="keeps it"):
        train(run, preset="tiny", data_dir=idx_folder, steps=30, resume=True, progress=False,
              preconditioning="none")


def test_the_patch_preset_trains_and_samples_through_every_sampler(idx_folder, tmp_path):
    run = train(tmp_path / "run", preset="patch", data_dir=idx_folder, steps=3, batch_size=8, grid_images=4,
                grid_steps=2, progress=False)
    model, schedule, config = load_checkpoint(run)
    assert config["unet"]["patch"] == 2 and model.stem.in_channels == 4 and model.full_res.conv1.out_channels == 32
    for name in SAMPLERS:
        steps = default_steps(name, schedule.T) if name == "ddpm" else 5
        images = generate(model, schedule, 2, sampler=name, steps=steps, seed=0, progress=False)
        assert images.shape == (2, 1, 28, 28) and images.float().std() > 0


def test_an_old_checkpoint_loads_and_gives_the_images_it_gave():
    model, schedule, config = load_checkpoint(OLD)
    assert "preconditioning" not in config["unet"] and model.config.preconditioning == "none"
    assert "patch" not in config["unet"] and model.config.patch == 1
    expected = np.load(OLD / "expected-images.npz")
    for name, kw in {"ddim": dict(steps=10), "ddpm": dict(), "dpm-solver": dict(steps=10, spacing="uniform")}.items():
        # written when every sampler walked the DDIM grid
        images = generate(model, schedule, 3, sampler=name, seed=0, progress=False, **kw).numpy()
        # Written on another machine: its float rounding may move a pixel by one grey level.
        diff = np.abs(images.astype(int) - expected[name].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, name


def test_an_edm_checkpoint_loads_and_gives_the_eps_and_images_it_gave():
    """Written when the preconditioning lived inside UNet.forward; the wrapper computes the same numbers
    (bit for bit on the machine that wrote them)."""
    model, schedule, config = load_checkpoint(EDM)
    assert config["unet"]["preconditioning"] == "edm" and isinstance(model, EDMPreconditioning)
    expected = np.load(EDM / "expected-images.npz")
    xt = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(model(xt, t), torch.from_numpy(expected["eps"]), rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model(xt, t).float()
    torch.testing.assert_close(bf16, torch.from_numpy(expected["eps_bf16"]), rtol=0.05, atol=0.05)
    for name, kw in {"ddim": dict(steps=10), "ddpm": dict(), "dpm-solver": dict(steps=10, spacing="uniform")}.items():
        images = generate(model, schedule, 3, sampler=name, seed=0, progress=False, **kw).numpy()
        diff = np.abs(images.astype(int) - expected[name].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, name


def test_edm_on_a_preset_with_min_snr_drops_min_snr_unless_asked():
    from mnistdiff.training.settings import resolve

    config = resolve("small", "mnist", None, {"preconditioning": "edm"})
    assert config["unet"]["preconditioning"] == "edm" and config["train"]["min_snr_gamma"] == 0.0
    assert resolve("small", "mnist", None, {})["train"]["min_snr_gamma"] == 5.0


def test_fid_checks_do_not_count_against_the_time_budget(idx_folder, tmp_path, monkeypatch, step_clock):
    """On the test's clock each step takes 1 s and each FID check 10 s: a 30 s budget holds 30 steps."""
    import csv

    from mnistdiff.training import loop

    def slow_fid(images, dataset):
        step_clock.now += 10.0
        return 1.0

    monkeypatch.setattr(loop, "fid_test", slow_fid)
    train(tmp_path / "run", preset="tiny", data_dir=idx_folder, steps=10**6, minutes=0.5, fid_every=5,
          fid_images=1, fid_steps=1, progress=False, clock=step_clock)
    with open(tmp_path / "run" / "fid.csv") as f:
        checks = [int(row["step"]) for row in csv.DictReader(f)]
    with open(tmp_path / "run" / "log.csv") as f:
        last = int(list(csv.DictReader(f))[-1]["step"])
    assert checks == [5, 10, 15, 20, 25, 30] and last == 30  # the checks' 60 s came on top of the 30 s
    assert step_clock.now == 30 + 60


def test_width_and_depth_are_a_new_runs_flags(idx_folder, tmp_path):
    from mnistdiff.cli.arguments import train_settings
    from mnistdiff.cli.parser import build_parser
    from mnistdiff.training.settings import resolve

    args = build_parser().parse_args(["train", "--out", "x", "--base", "24", "--blocks", "2"])
    config = resolve("small", "mnist", None, train_settings(args))
    assert (config["unet"]["base"], config["unet"]["blocks"]) == (24, 2)
    assert tuple(config["unet"]["mults"]) == get_preset("small").unet.mults

    run = train(tmp_path / "run", preset="tiny", data_dir=idx_folder, steps=2, base=12, blocks=2, progress=False)
    model, _, _ = load_checkpoint(run)
    assert (model.config.base, model.config.blocks) == (12, 2)
    with pytest.raises(ValueError, match="--base: the model's is 12"):
        resolve("tiny", "mnist", None, {"base": 16}, init_from=loading.find(run))


@pytest.mark.parametrize("shape, message", [(dict(base=20), "multiple of the 8 GroupNorm groups"),
                                            (dict(base=8, groups=8, heads=3), "multiple of the 3 heads"),
                                            (dict(blocks=0), "--blocks must be at least 1")])
def test_a_unet_shape_that_cannot_be_built_is_refused(shape, message):
    with pytest.raises(ValueError, match=message):
        replace(get_preset("small").unet, **shape)
