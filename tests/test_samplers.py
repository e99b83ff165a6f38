import pytest
import torch

from exact import GaussianData
from mnistdiff.diffusion import linear_schedule, cosine_schedule
from mnistdiff.samplers import ddim_invert, ddim_sample, ddim_update, ddpm_sample, ddpm_step, timesteps

SCHEDULE = linear_schedule()


def point_model(schedule=SCHEDULE, seed=0):
    """The exact predictor for a data set of one point, and that point."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    return GaussianData(schedule, x_star, 0.0), x_star


def test_timesteps_uniform_match_official_ddim_code():
    assert timesteps(50, 1000) == list(range(0, 1000, 20))
    assert timesteps(1000, 1000) == list(range(1000))
    assert timesteps(1, 1000) == [0]


def test_timesteps_quadratic_and_errors():
    seq = timesteps(10, 1000, "quadratic")
    assert seq[0] == 0 and seq[-1] == 800 and len(set(seq)) == 10
    for bad in (0, 1001):
        with pytest.raises(ValueError):
            timesteps(bad, 1000)
    with pytest.raises(ValueError):
        timesteps(10, 1000, "cubic")


def test_timesteps_end_early():
    assert timesteps(4, 1000, t_end=200) == [200, 400, 600, 800]
    assert timesteps(50, 1000, t_end=0) == timesteps(50, 1000)
    seq = timesteps(10, 1000, "quadratic", t_end=100)
    assert seq[0] == 100 and seq[-1] == 100 + 720 and len(set(seq)) == 10
    for bad in (-1, 997):
        with pytest.raises(ValueError):
            timesteps(4, 1000, t_end=bad)


def test_ddim_ending_early_returns_the_x0_predicted_there():
    """From t_end DDIM jumps to clean data: for Gaussian data, the posterior mean at t_end."""
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x_T = torch.randn((4, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    seen = []
    x0 = ddim_sample(model, x_T, SCHEDULE, timesteps(5, 1000, t_end=300), callback=lambda t, x: seen.append((t, x)))
    assert [t for t, _ in seen] == [720, 580, 440, 300, -1]  # from 860, the top of 300, 440, ..., 860
    t, x_at_end = seen[-2]
    ab = SCHEDULE.alpha_bar[300]
    expected = (x_at_end - (1 - ab).sqrt() * model(x_at_end, torch.full((4,), 300))) / ab.sqrt()
    torch.testing.assert_close(x0, expected)


@pytest.mark.parametrize("n_steps", [1, 10, 50])
def test_ddim_deterministic_returns_the_data_point(n_steps):
    model, x_star = point_model()
    x_T = torch.randn((8, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = ddim_sample(model, x_T, SCHEDULE, timesteps(n_steps, 1000))
    torch.testing.assert_close(x0, x_star.expand_as(x0), atol=1e-6, rtol=0)


def test_invert_then_sample_gives_back_the_input():
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x = torch.rand((64, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    errors = []
    for n_steps in (10, 100, 1000):
        steps = timesteps(n_steps, 1000)
        x_T = ddim_invert(model, x, SCHEDULE, steps)
        errors.append(((ddim_sample(model, x_T, SCHEDULE, steps) - x) ** 2).mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


def test_inverted_latent_has_unit_scale():
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x = 0.4 + 0.3 * torch.randn((256, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x_T = ddim_invert(model, x, SCHEDULE, timesteps(1000, 1000))
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
    ddpm = ddpm_sample(model, x_T, SCHEDULE, generator=torch.Generator().manual_seed(4))
    ddim = ddim_sample(model, x_T, SCHEDULE, timesteps(1000, 1000), eta=1.0, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ddim, ddpm, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "ddim-eta1"])
def test_samples_of_gaussian_data_have_its_mean_and_variance(sampler):
    """Over all 1000 steps; with fewer, the first-order update shrinks the variance (next test)."""
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    gen = torch.Generator().manual_seed(5)
    x_T = torch.randn((2000, 1, 4, 4), dtype=torch.float64, generator=gen)
    if sampler == "ddpm":
        x0 = ddpm_sample(model, x_T, SCHEDULE, generator=gen)
    else:
        eta = 1.0 if sampler == "ddim-eta1" else 0.0
        x0 = ddim_sample(model, x_T, SCHEDULE, timesteps(1000, 1000), eta=eta, generator=gen)
    # 32,000 draws: the standard error of the mean is 0.3 / 179 = 0.0017.
    assert abs(x0.mean().item() - mean) < 0.01
    assert abs(x0.std().item() / std - 1) < 0.03


def test_ddim_variance_converges_as_steps_grow():
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x_T = torch.randn((500, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    stds = [ddim_sample(model, x_T, SCHEDULE, timesteps(n, 1000)).std().item() for n in (10, 50, 200)]
    assert stds[0] < stds[1] < stds[2] < 0.31


def test_ddpm_beta_variance_is_wider_than_posterior():
    model = GaussianData(SCHEDULE, 0.0, 0.3)
    x_T = torch.randn((500, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    post = ddpm_sample(model, x_T, SCHEDULE, generator=torch.Generator().manual_seed(7))
    beta = ddpm_sample(model, x_T, SCHEDULE, variance="beta", generator=torch.Generator().manual_seed(7))
    assert beta.std() > post.std()


def test_clip_x0_keeps_samples_in_range():
    model, _ = point_model()
    far = GaussianData(SCHEDULE, 3.0, 0.0)  # a data point outside [-1, 1]
    x_T = torch.randn((4, 1, 4, 4), dtype=torch.float64)
    x0 = ddim_sample(far, x_T, SCHEDULE, timesteps(20, 1000), clip_x0=True)
    assert x0.abs().max() <= 1 + 1e-9
    assert ddim_sample(far, x_T, SCHEDULE, timesteps(20, 1000)).min() > 2.9


def test_bad_arguments():
    model, x_star = point_model()
    with pytest.raises(ValueError):
        ddim_sample(model, x_star, SCHEDULE, [0, 20], eta=-0.1)
    with pytest.raises(ValueError):
        ddim_sample(model, x_star, SCHEDULE, [20, 0])
    with pytest.raises(ValueError):
        ddim_sample(model, x_star, SCHEDULE, [0, 1000])
    with pytest.raises(ValueError):
        ddpm_sample(model, x_star, SCHEDULE, variance="large")


def test_callback_sees_every_step_down_to_clean_and_up_to_the_last_level():
    model = GaussianData(SCHEDULE, 0.0, 0.5)
    x = torch.randn((2, 1, 4, 4), dtype=torch.float64)
    steps = timesteps(5, 1000)
    seen = []
    out = ddim_sample(model, x, SCHEDULE, steps, callback=lambda t, xt: seen.append((t, xt)))
    assert [t for t, _ in seen] == [600, 400, 200, 0, -1] and seen[-1][1] is out
    seen.clear()
    ddim_invert(model, out, SCHEDULE, steps, callback=lambda t, xt: seen.append(t))
    assert seen == steps
