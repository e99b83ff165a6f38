import pytest
import torch

from exact import GaussianData
from mnistdiff.diffusion import linear_schedule, cosine_schedule
from mnistdiff.samplers import SAMPLERS, ddim_invert, ddim_update, ddpm_step, levels, sample_ddim, sample_ddpm

SCHEDULE = linear_schedule()


def point_model(schedule=SCHEDULE, seed=0):
    """The exact predictor for a data set of one point, and that point."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    return GaussianData(schedule, x_star, 0.0), x_star


def test_uniform_levels_match_official_ddim_code():
    assert levels(50, SCHEDULE) == list(range(980, -1, -20)) + [-1]
    assert levels(1000, SCHEDULE) == list(range(999, -2, -1))
    assert levels(1, SCHEDULE) == [0, -1]


@pytest.mark.parametrize("spacing", ["uniform", "quadratic", "logsnr"])
def test_levels_descend_to_clean_data(spacing):
    for n in (1, 2, 10, 100, 1000):
        grid = levels(n, SCHEDULE, spacing)
        assert len(grid) == n + 1 and grid[-1] == -1 and grid == sorted(set(grid), reverse=True)
        assert grid[-2] == (0 if n > 1 or spacing == "uniform" else 999)


def test_quadratic_and_logsnr_levels_and_errors():
    assert levels(5, SCHEDULE, "quadratic") == [999, 562, 250, 62, 0, -1]  # 999 (i/4)^2, rounded
    lam = 0.5 * (SCHEDULE.alpha_bar.log() - (1 - SCHEDULE.alpha_bar).log())
    steps = lam[levels(11, SCHEDULE, "logsnr")[:-1]].diff()
    assert steps.max() / steps.min() < 1.3  # even in lambda, up to rounding to whole timesteps
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="at most T=1000"):
            levels(bad, SCHEDULE)
    with pytest.raises(ValueError, match="spacing"):
        levels(10, SCHEDULE, "cubic")


def test_levels_end_early():
    assert levels(4, SCHEDULE, t_end=200) == [800, 600, 400, 200, -1]
    assert levels(50, SCHEDULE, t_end=0) == levels(50, SCHEDULE)
    assert levels(4, SCHEDULE, "uniform", t_end=200) != levels(4, SCHEDULE, "quadratic", t_end=200)
    for spacing in ("uniform", "quadratic", "logsnr"):
        for n in (2, 10, 100):
            grid = levels(n, SCHEDULE, spacing, t_end=150)
            assert len(grid) == n + 1 and grid[-2:] == [150, -1] and grid == sorted(set(grid), reverse=True)
    for bad in (-1, 997):
        with pytest.raises(ValueError, match="t_end"):
            levels(4, SCHEDULE, t_end=bad)


def test_ddim_ending_early_returns_the_x0_predicted_there():
    """From t_end DDIM jumps to clean data: for Gaussian data, the posterior mean at t_end."""
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x_T = torch.randn((4, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    seen = []
    x0 = sample_ddim(model, x_T, SCHEDULE, levels(5, SCHEDULE, t_end=300),
                     callback=lambda t, x, x0_pred: seen.append((t, x)))
    assert [t for t, _ in seen] == [720, 580, 440, 300, -1]  # from 860, the top of 860, 720, ..., 300
    t, x_at_end = seen[-2]
    ab = SCHEDULE.alpha_bar[300]
    expected = (x_at_end - (1 - ab).sqrt() * model(x_at_end, torch.full((4,), 300))) / ab.sqrt()
    torch.testing.assert_close(x0, expected)


@pytest.mark.parametrize("n_steps", [1, 10, 50])
def test_ddim_deterministic_returns_the_data_point(n_steps):
    model, x_star = point_model()
    x_T = torch.randn((8, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = sample_ddim(model, x_T, SCHEDULE, levels(n_steps, SCHEDULE))
    torch.testing.assert_close(x0, x_star.expand_as(x0), atol=1e-6, rtol=0)


def test_invert_then_sample_gives_back_the_input():
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x = torch.rand((64, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    errors = []
    for n_steps in (10, 100, 1000):
        grid = levels(n_steps, SCHEDULE)
        x_T = ddim_invert(model, x, SCHEDULE, grid)
        errors.append(((sample_ddim(model, x_T, SCHEDULE, grid) - x) ** 2).mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


def test_inverted_latent_has_unit_scale():
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x = 0.4 + 0.3 * torch.randn((256, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x_T = ddim_invert(model, x, SCHEDULE, levels(1000, SCHEDULE))
    assert abs(x_T.std().item() - 1) < 0.05 and abs(x_T.mean().item()) < 0.05


@pytest.mark.parametrize("schedule", [linear_schedule(), cosine_schedule(1000)])
def test_ddim_eta1_over_every_step_equals_ddpm_step(schedule):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn((4, 1, 4, 4), dtype=torch.float64, generator=gen)
    for t in (999, 500, 10, 1):
        eps, noise = torch.randn_like(x), torch.randn_like(x)
        ab, ab_prev = float(schedule.alpha_bar[t]), float(schedule.alpha_bar[t - 1])
        ddim = ddim_update(x, eps, ab, ab_prev, eta=1.0, noise=noise)
        torch.testing.assert_close(ddim, ddpm_step(x, eps, schedule, t, noise), atol=1e-10, rtol=1e-10)


def test_ddim_eta1_sampler_equals_ddpm_sampler_with_same_noise():
    model = GaussianData(SCHEDULE, 0.3, 0.5)
    x_T = torch.randn((4, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    every = levels(1000, SCHEDULE)
    ddpm = sample_ddpm(model, x_T, SCHEDULE, every, generator=torch.Generator().manual_seed(4))
    ddim = sample_ddim(model, x_T, SCHEDULE, every, eta=1.0, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ddim, ddpm, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "ddim-eta1"])
def test_samples_of_gaussian_data_have_its_mean_and_variance(sampler):
    """Over all 1000 steps; with fewer, the first-order update shrinks the variance (next test)."""
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    gen = torch.Generator().manual_seed(5)
    x_T = torch.randn((2000, 1, 4, 4), dtype=torch.float64, generator=gen)
    options = {"eta": 1.0} if sampler == "ddim-eta1" else {}
    x0 = SAMPLERS[sampler.removesuffix("-eta1")](model, x_T, SCHEDULE, levels(1000, SCHEDULE), generator=gen, **options)
    # 32,000 draws: the standard error of the mean is 0.3 / 179 = 0.0017.
    assert abs(x0.mean().item() - mean) < 0.01
    assert abs(x0.std().item() / std - 1) < 0.03


def test_ddim_variance_converges_as_steps_grow():
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x_T = torch.randn((500, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    stds = [sample_ddim(model, x_T, SCHEDULE, levels(n, SCHEDULE)).std().item() for n in (10, 50, 200)]
    assert stds[0] < stds[1] < stds[2] < 0.31


def test_ddpm_beta_variance_is_wider_than_posterior():
    model = GaussianData(SCHEDULE, 0.0, 0.3)
    x_T = torch.randn((500, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    every = levels(1000, SCHEDULE)
    post = sample_ddpm(model, x_T, SCHEDULE, every, generator=torch.Generator().manual_seed(7))
    beta = sample_ddpm(model, x_T, SCHEDULE, every, variance="beta", generator=torch.Generator().manual_seed(7))
    assert beta.std() > post.std()


def test_clip_x0_keeps_samples_in_range():
    model, _ = point_model()
    far = GaussianData(SCHEDULE, 3.0, 0.0)  # a data point outside [-1, 1]
    x_T = torch.randn((4, 1, 4, 4), dtype=torch.float64)
    x0 = sample_ddim(far, x_T, SCHEDULE, levels(20, SCHEDULE), clip_x0=True)
    assert x0.abs().max() <= 1 + 1e-9
    assert sample_ddim(far, x_T, SCHEDULE, levels(20, SCHEDULE)).min() > 2.9


def test_bad_arguments():
    model, x_star = point_model()
    with pytest.raises(ValueError, match="eta"):
        sample_ddim(model, x_star, SCHEDULE, [20, 0, -1], eta=-0.1)
    for bad in ([0, 20, -1], [1000, 0, -1], [20], [20, -2], [20, 20, -1]):
        with pytest.raises(ValueError, match="levels"):
            sample_ddim(model, x_star, SCHEDULE, bad)
    for bad in ([0, 20, 40], [20]):  # ascending timesteps, or one level: inversion walks `levels` too
        with pytest.raises(ValueError, match="levels"):
            ddim_invert(model, x_star, SCHEDULE, bad)
    with pytest.raises(ValueError, match="variance"):
        sample_ddpm(model, x_star, SCHEDULE, levels(1000, SCHEDULE), variance="large")


def test_ddpm_over_a_shorter_grid_says_to_use_ddim():
    model, x_star = point_model()
    with pytest.raises(ValueError, match="eta = 1"):
        sample_ddpm(model, x_star, SCHEDULE, levels(50, SCHEDULE))


def test_callback_sees_every_step_down_to_clean_and_up_to_the_last_level():
    model = GaussianData(SCHEDULE, 0.0, 0.5)
    x = torch.randn((2, 1, 4, 4), dtype=torch.float64)
    grid = levels(5, SCHEDULE)
    seen = []
    out = sample_ddim(model, x, SCHEDULE, grid, callback=lambda t, xt, x0: seen.append((t, xt, x0)))
    assert [t for t, _, _ in seen] == [600, 400, 200, 0, -1] and seen[-1][1] is out
    torch.testing.assert_close(seen[-1][2], out)  # the last step lands on the x0 predicted at t = 0
    seen.clear()
    ddim_invert(model, out, SCHEDULE, grid, callback=lambda t, xt, x0: seen.append(t))
    assert seen == grid[-2::-1]
