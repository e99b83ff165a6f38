"""DPM-Solver++(2M) against answers known in closed form."""

import math

import pytest
import torch

from exact import GaussianData
from mnistdiff.diffusion import cosine_schedule, linear_schedule
from mnistdiff.samplers import levels, sample_ddim, sample_dpm_solver, sample_dpm_solver_sde

SCHEDULE = linear_schedule()


def ode_solution(x_T, schedule, mean, std, t_from, t_to):
    """The probability-flow ODE for N(mean, std^2) data moves x along the standardised marginal."""
    ab = lambda t: 1.0 if t is None else float(schedule.alpha_bar[t])  # noqa: E731 (None: clean data)
    scale = lambda t: math.sqrt(ab(t) * std**2 + 1 - ab(t))  # noqa: E731
    return math.sqrt(ab(t_to)) * mean + scale(t_to) / scale(t_from) * (x_T - math.sqrt(ab(t_from)) * mean)


@pytest.mark.parametrize("n_steps", [1, 2, 10, 20])
@pytest.mark.parametrize("t_end", [None, 200])
def test_clean_end_returns_the_x0_predicted_at_t_end(n_steps, t_end):
    """On one-point data every x0 estimate is the point, so a grid ending at clean data lands on it exactly."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model = GaussianData(SCHEDULE, x_star, 0.0)
    x_T = torch.randn((3, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = sample_dpm_solver(model, x_T, SCHEDULE, levels(n_steps, SCHEDULE, "logsnr", t_end=t_end))
    torch.testing.assert_close(x0, x_star.expand_as(x0), atol=1e-10, rtol=0)


def test_clean_end_at_t_0_matches_the_gaussian():
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x_T = torch.randn((2000, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x0 = sample_dpm_solver(model, x_T, SCHEDULE, levels(20, SCHEDULE, "logsnr"))
    assert abs(x0.mean().item() - mean) < 0.01
    assert abs(x0.std().item() / std - 1) < 0.03


@pytest.mark.parametrize("n_steps", [1, 5, 10, 20])
@pytest.mark.parametrize("spacing", ["logsnr", "uniform", "quadratic"])
@pytest.mark.parametrize("schedule", [SCHEDULE, cosine_schedule()], ids=["linear", "cosine"])
def test_one_point_data_ends_at_the_point(n_steps, spacing, schedule):
    """Every x0 estimate is the point, so x_0 = alpha_0 x* + sigma_0 / sigma_s (x_s - alpha_s x*) exactly
    on a grid that stops at t = 0 (the levels without their clean end)."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model = GaussianData(schedule, x_star, 0.0)
    x_T = torch.randn((3, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grid = levels(n_steps + 1, schedule, spacing)[:-1]
    x0 = sample_dpm_solver(model, x_T, schedule, grid)
    torch.testing.assert_close(x0, ode_solution(x_T, schedule, x_star, 0.0, grid[0], 0), atol=1e-10, rtol=1e-10)
    # What is left of x_T is x_T's noise scaled by sigma_0 / sigma_s: small.
    sigma = (1 - schedule.alpha_bar).sqrt()
    assert (x0 - x_star).abs().max() < 5 * sigma[0] / sigma[grid[0]]


def test_gaussian_data_mean_and_variance():
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x_T = torch.randn((2000, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x0 = sample_dpm_solver(model, x_T, SCHEDULE, levels(21, SCHEDULE, "logsnr")[:-1])  # ending at t = 0
    # 32,000 draws: the standard error of the mean is 0.3 / 179 = 0.0017.
    assert abs(x0.mean().item() - mean) < 0.01
    assert abs(x0.std().item() / math.sqrt(std**2 + 1e-4) - 1) < 0.03


def test_second_order_convergence_and_ahead_of_ddim():
    """Doubling the steps cuts the error about 4x (second order); DDIM's falls about 2x.

    Both solve the ODE from 999 to t = 0, on the levels without their clean end. With 20
    evaluations on the same grid DDIM is off by about 0.12, DPM-Solver++ by about 0.014.
    """
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x_T = torch.randn((200, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    exact = ode_solution(x_T, SCHEDULE, mean, std, 999, 0)
    grids = [levels(n + 1, SCHEDULE, "logsnr")[:-1] for n in (20, 40, 80)]
    errors = [(sample_dpm_solver(model, x_T, SCHEDULE, grid) - exact).abs().max().item() for grid in grids]
    assert errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3
    ddim_error = (sample_ddim(model, x_T, SCHEDULE, grids[0]) - exact).abs().max().item()
    assert errors[0] < 0.2 * ddim_error


def test_ten_steps_are_close_to_the_ode_solution():
    """Either side of the switch to a second-order final step (at 11 steps)."""
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x_T = torch.randn((50, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = ode_solution(x_T, SCHEDULE, 0.4, 0.3, 999, 0)
    for n in (10, 11):
        x0 = sample_dpm_solver(model, x_T, SCHEDULE, levels(n + 1, SCHEDULE, "logsnr")[:-1])
        assert (x0 - exact).abs().max() < 0.05


def test_bad_grid():
    model = GaussianData(SCHEDULE, 0.0, 1.0)
    x_T = torch.randn(1, 1, 2, 2)
    for bad in ([500], [2, 3], [1000, 0], [-1], [5, -1, -1], [5, -2], [5, -1, 0]):
        with pytest.raises(ValueError, match="levels"):
            sample_dpm_solver(model, x_T, SCHEDULE, bad)


@pytest.mark.parametrize("n_steps", [1, 2, 10])
def test_sde_one_point_data_ends_at_the_point(n_steps):
    """Every x0 estimate is the point and the last step lands on its x0, whatever noise came before."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model = GaussianData(SCHEDULE, x_star, 0.0)
    x_T = torch.randn((3, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = sample_dpm_solver_sde(model, x_T, SCHEDULE, levels(n_steps, SCHEDULE, "logsnr"),
                               generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(x0, x_star.expand_as(x0), atol=1e-10, rtol=0)


def test_sde_variance_converges_at_second_order():
    """On Gaussian data the samples' variance error falls about 4x as the steps double (measured: 0.069 at
    20 log-SNR steps, 0.018 at 40, 0.010 at 80, the last near the sampling error of 128,000 draws, 0.004;
    DDIM's falls 2x, -0.22, -0.11, -0.056: test_heun.py checks its first order). The mean is right at any count."""
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x_T = torch.randn((8000, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    out = [sample_dpm_solver_sde(model, x_T, SCHEDULE, levels(n, SCHEDULE, "logsnr"),
                                 generator=torch.Generator().manual_seed(3)) for n in (20, 40, 80)]
    assert all(abs(x.mean().item() - mean) < 0.002 for x in out)
    errors = [abs(x.var().item() / std**2 - 1) for x in out]
    assert errors[0] / errors[1] > 3 and errors[2] < 0.015


def test_sde_draws_its_noise_from_the_generator():
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x_T = torch.randn((2, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grid = levels(10, SCHEDULE, "logsnr")
    runs = [sample_dpm_solver_sde(model, x_T, SCHEDULE, grid, generator=torch.Generator().manual_seed(s))
            for s in (4, 4, 5)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
