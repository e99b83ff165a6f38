"""DPM-Solver++(2M) against answers known in closed form."""

import math

import pytest
import torch

from exact import GaussianData
from mnistdiff.diffusion import cosine_schedule, linear_schedule
from mnistdiff.samplers import ddim_sample, dpm_solver_sample, dpm_solver_timesteps

SCHEDULE = linear_schedule()


def ode_solution(x_T, schedule, mean, std, t_from, t_to):
    """The probability-flow ODE for N(mean, std^2) data moves x along the standardised marginal."""
    ab = lambda t: 1.0 if t is None else float(schedule.alpha_bar[t])  # noqa: E731 (None: clean data)
    scale = lambda t: math.sqrt(ab(t) * std**2 + 1 - ab(t))  # noqa: E731
    return math.sqrt(ab(t_to)) * mean + scale(t_to) / scale(t_from) * (x_T - math.sqrt(ab(t_from)) * mean)


def test_grid_spans_0_to_T_minus_1():
    assert dpm_solver_timesteps(4, SCHEDULE, "uniform") == [0, 250, 500, 749, 999]
    assert dpm_solver_timesteps(4, SCHEDULE, "quadratic") == [0, 62, 250, 562, 999]  # 999 (i/4)^2, rounded
    for spacing in ("logsnr", "quadratic", "uniform"):
        for n in (10, 100, 999):
            grid = dpm_solver_timesteps(n, SCHEDULE, spacing)
            assert len(grid) == n + 1 and grid[0] == 0 and grid[-1] == 999 and grid == sorted(set(grid))
    lam = 0.5 * (SCHEDULE.alpha_bar.log() - (1 - SCHEDULE.alpha_bar).log())
    steps = lam[dpm_solver_timesteps(10, SCHEDULE, "logsnr")].diff()
    assert steps.max() / steps.min() < 1.3  # even in lambda, up to rounding to whole timesteps
    with pytest.raises(ValueError):
        dpm_solver_timesteps(0, SCHEDULE)
    with pytest.raises(ValueError):
        dpm_solver_timesteps(5, SCHEDULE, "karras")


def test_grid_ending_early_jumps_to_clean_data():
    assert dpm_solver_timesteps(4, SCHEDULE, "uniform", t_end=200) == [-1, 200, 466, 733, 999]
    assert dpm_solver_timesteps(1, SCHEDULE, "uniform", t_end=200) == [-1, 999]
    for spacing in ("logsnr", "quadratic", "uniform"):
        for n in (2, 10, 100):
            grid = dpm_solver_timesteps(n, SCHEDULE, spacing, t_end=150)
            assert len(grid) == n + 1 and grid[:2] == [-1, 150] and grid[-1] == 999 and grid == sorted(set(grid))
    for bad in (-1, 999):
        with pytest.raises(ValueError):
            dpm_solver_timesteps(10, SCHEDULE, t_end=bad)


@pytest.mark.parametrize("n_steps", [1, 2, 10, 20])
def test_clean_end_returns_the_x0_predicted_at_t_end(n_steps):
    """On one-point data every x0 estimate is the point, so a grid ending at clean data lands on it exactly."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model = GaussianData(SCHEDULE, x_star, 0.0)
    x_T = torch.randn((3, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = dpm_solver_sample(model, x_T, SCHEDULE, dpm_solver_timesteps(n_steps, SCHEDULE, "uniform", t_end=200))
    torch.testing.assert_close(x0, x_star.expand_as(x0), atol=1e-10, rtol=0)


def test_clean_end_at_t_0_matches_the_gaussian():
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x_T = torch.randn((2000, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x0 = dpm_solver_sample(model, x_T, SCHEDULE, dpm_solver_timesteps(20, SCHEDULE, "logsnr", t_end=0))
    assert abs(x0.mean().item() - mean) < 0.01
    assert abs(x0.std().item() / std - 1) < 0.03


@pytest.mark.parametrize("n_steps", [1, 5, 10, 20])
@pytest.mark.parametrize("spacing", ["logsnr", "uniform", "quadratic"])
@pytest.mark.parametrize("schedule", [SCHEDULE, cosine_schedule()], ids=["linear", "cosine"])
def test_one_point_data_ends_at_the_point(n_steps, spacing, schedule):
    """Every x0 estimate is the point, so x_0 = alpha_0 x* + sigma_0 / sigma_T (x_T - alpha_T x*) exactly."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model = GaussianData(schedule, x_star, 0.0)
    x_T = torch.randn((3, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = dpm_solver_sample(model, x_T, schedule, dpm_solver_timesteps(n_steps, schedule, spacing))
    torch.testing.assert_close(x0, ode_solution(x_T, schedule, x_star, 0.0, 999, 0), atol=1e-10, rtol=1e-10)
    assert (x0 - x_star).abs().max() < 5 * math.sqrt(1 - schedule.alpha_bar[0])


def test_gaussian_data_mean_and_variance():
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x_T = torch.randn((2000, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x0 = dpm_solver_sample(model, x_T, SCHEDULE, dpm_solver_timesteps(20, SCHEDULE, "logsnr"))
    # 32,000 draws: the standard error of the mean is 0.3 / 179 = 0.0017.
    assert abs(x0.mean().item() - mean) < 0.01
    assert abs(x0.std().item() / math.sqrt(std**2 + 1e-4) - 1) < 0.03


def test_second_order_convergence_and_ahead_of_ddim():
    """Doubling the steps cuts the error about 4x (second order); DDIM's falls about 2x.

    With 20 evaluations on the same grid DDIM is off by 0.12, DPM-Solver++ by 0.014.
    """
    mean, std = 0.4, 0.3
    model = GaussianData(SCHEDULE, mean, std)
    x_T = torch.randn((200, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    exact = ode_solution(x_T, SCHEDULE, mean, std, 999, 0)
    grids = [dpm_solver_timesteps(n, SCHEDULE, "logsnr") for n in (20, 40, 80)]
    errors = [(dpm_solver_sample(model, x_T, SCHEDULE, grid) - exact).abs().max().item() for grid in grids]
    assert errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3
    grid = grids[0]
    ddim = ddim_sample(model, x_T, SCHEDULE, grid[1:])  # 20 evaluations too, from 999 to clean data
    ddim_error = (ddim - ode_solution(x_T, SCHEDULE, mean, std, 999, None)).abs().max().item()
    assert errors[0] < 0.2 * ddim_error


def test_ten_steps_are_close_to_the_ode_solution():
    """Either side of the switch to a second-order final step (at 11 steps)."""
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x_T = torch.randn((50, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = ode_solution(x_T, SCHEDULE, 0.4, 0.3, 999, 0)
    for n in (10, 11):
        x0 = dpm_solver_sample(model, x_T, SCHEDULE, dpm_solver_timesteps(n, SCHEDULE, "logsnr"))
        assert (x0 - exact).abs().max() < 0.05


def test_bad_grid():
    model = GaussianData(SCHEDULE, 0.0, 1.0)
    x_T = torch.randn(1, 1, 2, 2)
    for bad in ([500], [3, 2], [0, 1000], [-1], [-1, -1, 5], [-2, 5]):
        with pytest.raises(ValueError):
            dpm_solver_sample(model, x_T, SCHEDULE, bad)
