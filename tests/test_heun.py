"""Heun's method and EDM's stochastic sampler (Karras et al. 2022) against answers known in closed form."""

import math

import pytest
import torch

from exact import GaussianData
from mnistdiff.diffusion import linear_schedule
from mnistdiff.samplers import levels, sample_ddim, sample_edm, sample_heun
from mnistdiff.samplers.heun import churned_level, sigma
from test_dpm_solver import ode_solution

SCHEDULE = linear_schedule()


def noise(n, seed):
    return torch.randn((n, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def error_slopes(sampler, model, x_T, exact, steps=(10, 20, 40, 80)):
    """log2 of the error's fall each time the steps double, solving 999 -> 0 on log-SNR levels."""
    errors = [(sampler(model, x_T, SCHEDULE, levels(n + 1, SCHEDULE, "logsnr")[:-1]) - exact).abs().max().item()
              for n in steps]
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])], errors


def test_heun_converges_at_second_order_and_ddim_at_first():
    """On Gaussian data the ODE's solution is known: doubling the steps cuts Heun's error about 4x, DDIM's
    (Euler's method in sigma) about 2x. Measured slopes: Heun 2.20, 2.09, 2.04; DDIM 0.91, 0.96, 0.99."""
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x_T = noise(200, 2)
    exact = ode_solution(x_T, SCHEDULE, mean, std, 999, 0)
    heun, heun_errors = error_slopes(sample_heun, model, x_T, exact)
    ddim, ddim_errors = error_slopes(sample_ddim, model, x_T, exact)
    assert all(1.8 < s < 2.4 for s in heun), heun
    assert all(0.8 < s < 1.2 for s in ddim), ddim
    assert heun_errors[-1] < 0.1 * ddim_errors[-1]


@pytest.mark.parametrize("n_steps", [1, 2, 5, 20])
@pytest.mark.parametrize("sampler", [sample_heun, sample_edm])
def test_one_point_data_lands_on_the_point(sampler, n_steps):
    """Every x0 the model predicts is the point, and the last step (to sigma = 0) lands on its x0."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model = GaussianData(SCHEDULE, x_star, 0.0)
    x0 = sampler(model, noise(3, 1), SCHEDULE, levels(n_steps, SCHEDULE, "logsnr"),
                 generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(x0, x_star.expand_as(x0), atol=1e-8, rtol=0)


@pytest.mark.parametrize("sampler, options", [(sample_heun, {}), (sample_edm, {"s_noise": 1.0})])
def test_samples_of_gaussian_data_have_its_mean_and_variance(sampler, options):
    """100 steps; EDM with s_noise = 1, since its default 1.007 widens the samples on purpose."""
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x0 = sampler(model, noise(2000, 5), SCHEDULE, levels(100, SCHEDULE, "logsnr"),
                 generator=torch.Generator().manual_seed(3), **options)
    # 32,000 draws: the standard error of the mean is 0.3 / 179 = 0.0017.
    assert abs(x0.mean().item() - mean) < 0.01
    assert abs(x0.std().item() / std - 1) < 0.03


def test_edm_without_churn_is_heun_and_with_churn_draws_from_the_generator():
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x_T, grid = noise(4, 6), levels(10, SCHEDULE, "logsnr")
    heun = sample_heun(model, x_T, SCHEDULE, grid)
    assert torch.equal(sample_edm(model, x_T, SCHEDULE, grid, s_churn=0.0), heun)
    # s_tmax = 1 (sigma 1 is t = 362): with the defaults only the levels below are churned.
    churned = [sample_edm(model, x_T, SCHEDULE, grid, generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(churned[0], churned[1]) and not torch.equal(churned[0], churned[2])
    assert not torch.equal(churned[0], heun)
    churn_everywhere = sample_edm(model, x_T, SCHEDULE, grid, s_tmax=math.inf,
                                  generator=torch.Generator().manual_seed(7))
    assert not torch.equal(churn_everywhere, churned[0])


def test_churned_level_rounds_sigma_hat_up_to_a_level():
    for t, gamma in [(0, 0.1), (30, 0.4), (300, 0.05), (700, 0.2)]:
        target = (1 + gamma) * sigma(SCHEDULE, t)
        t_hat = churned_level(SCHEDULE, t, gamma)
        assert t_hat > t and sigma(SCHEDULE, t_hat) >= target > sigma(SCHEDULE, t_hat - 1)
    assert [churned_level(SCHEDULE, t, 0.0) for t in (0, 500, 999)] == [0, 500, 999]
    assert churned_level(SCHEDULE, 999, 0.4) == 999  # no level above T - 1


def test_edm_counts_one_churn_per_step_and_two_calls_per_step_but_the_last():
    calls = []
    inner = GaussianData(SCHEDULE, 0.4, 0.3)

    def model(x, t):
        calls.append(int(t[0]))
        return inner(x, t)

    grid = levels(4, SCHEDULE, "logsnr")
    sample_edm(model, noise(2, 9), SCHEDULE, grid, s_tmin=0.0, s_tmax=math.inf, s_churn=4.0,
               generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2 * 4 - 1
    # Each step's first call is at its churned level, above the grid's but for T - 1 (the top); the
    # second at the next grid level.
    assert calls[0] == grid[0] == 999 and all(calls[2 * i] > grid[i] for i in range(1, 4))
    assert calls[1::2] == grid[1:-1]


def test_clipping_lands_on_the_clipped_x0():
    far = GaussianData(SCHEDULE, 3.0, 0.0)  # a data point outside [-1, 1]
    grid = levels(5, SCHEDULE, "logsnr")
    x0 = sample_heun(far, noise(4, 10), SCHEDULE, grid, clip_x0=True)
    torch.testing.assert_close(x0, torch.ones_like(x0))
    assert sample_heun(far, noise(4, 10), SCHEDULE, grid).min() > 2.9


def test_bad_options():
    model = GaussianData(SCHEDULE, 0.0, 1.0)
    with pytest.raises(ValueError, match="s_churn"):
        sample_edm(model, noise(1, 0), SCHEDULE, [500, 0, -1], s_churn=-1.0)
    with pytest.raises(ValueError, match="levels"):
        sample_heun(model, noise(1, 0), SCHEDULE, [0, 500, -1])
