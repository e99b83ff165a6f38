import pytest
import torch

from exact import GaussianData
from mnistdiff.diffusion import linear_schedule, cosine_schedule
from mnistdiff.samplers import (SAMPLERS, SPACINGS, ddim_invert, ddim_update, ddpm_step, default_spacing, grid_steps,
                                levels, register, sample_ddim, sample_ddpm, sampler_levels, steps_taken)

SCHEDULE = linear_schedule()


def point_model(schedule=SCHEDULE, seed=0):
    """The exact predictor for a data set of one point, and that point."""
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    return GaussianData(schedule, x_star, 0.0), x_star


def test_uniform_levels_match_official_ddim_code():
    assert levels(50, SCHEDULE) == list(range(980, -1, -20)) + [-1]
    assert levels(1000, SCHEDULE) == list(range(999, -2, -1))
    assert levels(1, SCHEDULE) == [0, -1]


@pytest.mark.parametrize("spacing", SPACINGS)
def test_levels_descend_to_clean_data(spacing):
    for n in (1, 2, 3, 7, 10, 16, 100, 333, 999, 1000):
        grid = levels(n, SCHEDULE, spacing)
        assert len(grid) == n + 1 and grid[-1] == -1 and grid == sorted(set(grid), reverse=True)
        assert 0 <= grid[-2] and grid[0] <= 999
        if spacing == "trailing":
            assert grid[0] == 999 and grid[-2] == round(1000 / n) - 1
        else:
            assert grid[-2] == (0 if n > 1 or spacing == "uniform" else 999)


@pytest.mark.parametrize("spacing", ["uniform", "trailing"])
def test_every_step_count_gives_distinct_descending_levels(spacing):
    for n in range(1, 1001):
        grid = levels(n, SCHEDULE, spacing)
        assert len(grid) == n + 1 and grid[-1] == -1 and all(a > b for a, b in zip(grid, grid[1:])), n


def test_trailing_levels_start_at_the_last_timestep():
    """Lin et al. 2024: T - 1 down in steps of T/n, as diffusers' timestep_spacing "trailing"."""
    assert levels(10, SCHEDULE, "trailing") == list(range(999, 0, -100)) + [-1]
    assert levels(3, SCHEDULE, "trailing") == [999, 666, 332, -1]  # 1000, 666.7, 333.3 rounded, minus 1
    assert levels(1, SCHEDULE, "trailing") == [999, -1]
    assert levels(1000, SCHEDULE, "trailing") == levels(1000, SCHEDULE)
    with pytest.raises(ValueError, match="t_end"):
        levels(10, SCHEDULE, "trailing", t_end=100)


def test_each_sampler_declares_its_grid_and_counts_its_model_calls():
    """sampler_levels gives each sampler its own spacing and at most `steps` model evaluations, and
    steps_taken says how many it makes: counted here on the closed-form model."""
    assert [default_spacing(name) for name in ("ddim", "dpm-solver", "heun", "edm", "dpm-solver-sde")] == \
        ["uniform", "trailing", "trailing", "trailing", "trailing"]
    assert sampler_levels("ddim", None, SCHEDULE) == levels(50, SCHEDULE)
    assert sampler_levels("heun", 10, SCHEDULE) == levels(5, SCHEDULE, "trailing")
    assert sampler_levels("heun", 10, SCHEDULE, "logsnr") == levels(5, SCHEDULE, "logsnr")
    assert sampler_levels("ddpm", None, SCHEDULE) == levels(1000, SCHEDULE)
    inner = GaussianData(SCHEDULE, 0.4, 0.3)
    for name in SAMPLERS:
        for steps in ((None,) if name == "ddpm" else (1, 2, 5, 10, 20)):
            calls = []
            model = lambda x, t: calls.append(1) or inner(x, t)  # noqa: E731
            x_T = torch.randn((2, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            SAMPLERS[name](model, x_T, SCHEDULE, sampler_levels(name, steps, SCHEDULE),
                           generator=torch.Generator().manual_seed(1))
            assert len(calls) == steps_taken(name, steps, SCHEDULE.T) <= (steps or 1000), (name, steps)
    assert [grid_steps("heun", k, 1000) for k in (1, 2, 3, 10, 49, 50)] == [1, 1, 2, 5, 25, 25]
    assert [steps_taken("heun", k, 1000) for k in (1, 2, 3, 10, 50)] == [1, 1, 3, 9, 49]


def test_a_registered_sampler_gets_its_own_spacing_and_evaluation_count():
    from mnistdiff.generation import generate
    from mnistdiff.model import UNet, get_preset

    seen = []

    def twice(model, x, schedule, levels, *, generator=None, clip_x0=False, callback=None, progress=False):
        seen.append(levels)
        return x.clamp(-1, 1)

    twice.spacing, twice.evaluations = "quadratic", lambda n: 2 * n
    register("twice", twice)
    try:
        assert sampler_levels("twice", 9, SCHEDULE) == levels(4, SCHEDULE, "quadratic")
        assert steps_taken("twice", 9, SCHEDULE.T) == 8
        model = UNet(get_preset("tiny").unet)
        generate(model, SCHEDULE, 1, sampler="twice", steps=9)
        generate(model, SCHEDULE, 1, sampler="twice", steps=9, spacing="trailing")
        assert seen == [levels(4, SCHEDULE, "quadratic"), levels(4, SCHEDULE, "trailing")]
    finally:
        SAMPLERS.pop("twice")


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



# Grids of the single levels function this file's spacing functions replaced, for each spacing, with and
# without t_end, on both schedules and on a short one where the ends crowd the levels together.
KNOWN_GRIDS = [
    ("linear", 1000, "uniform", 7, 150, [878, 757, 635, 514, 392, 271, 150, -1]),
    ("linear", 1000, "quadratic", 10, None, [999, 789, 604, 444, 308, 197, 111, 49, 12, 0, -1]),
    ("linear", 1000, "quadratic", 7, 150, [999, 740, 527, 362, 244, 174, 150, -1]),
    ("linear", 1000, "logsnr", 10, None, [999, 886, 757, 603, 410, 202, 73, 22, 5, 0, -1]),
    ("linear", 1000, "logsnr", 7, 150, [999, 900, 789, 659, 503, 317, 150, -1]),
    ("cosine", 1000, "logsnr", 10, None, [999, 998, 997, 994, 975, 872, 476, 105, 14, 0, -1]),
    ("cosine", 1000, "logsnr", 7, 150, [999, 998, 997, 990, 940, 651, 150, -1]),
    ("linear", 20, "uniform", 5, 3, [16, 13, 9, 6, 3, -1]),
    ("linear", 20, "quadratic", 6, None, [19, 12, 7, 3, 1, 0, -1]),
    ("linear", 20, "quadratic", 5, 3, [19, 12, 7, 4, 3, -1]),
    ("linear", 20, "logsnr", 6, None, [19, 9, 4, 2, 1, 0, -1]),
    ("linear", 20, "logsnr", 5, 3, [19, 12, 8, 5, 3, -1]),
]


@pytest.mark.parametrize("kind, T, spacing, n, t_end, expected", KNOWN_GRIDS)
def test_levels_of_each_spacing_are_the_known_grids(kind, T, spacing, n, t_end, expected):
    schedule = (linear_schedule if kind == "linear" else cosine_schedule)(T)
    assert levels(n, schedule, spacing, t_end) == expected


@pytest.mark.parametrize("schedule", [linear_schedule(), cosine_schedule(), linear_schedule(7)])
def test_every_grid_is_distinct_descending_and_spans_its_range(schedule):
    T = schedule.T
    for n in sorted({*range(1, min(T, 30) + 1), T}):
        for spacing in SPACINGS:
            for t_end in sorted({0, (T - n) // 2, T - n}):
                if spacing == "trailing" and t_end:
                    with pytest.raises(ValueError, match="no t_end"):
                        levels(n, schedule, spacing, t_end)
                    continue
                grid = levels(n, schedule, spacing, t_end)
                last = t_end if n > 1 or spacing == "uniform" else T - 1  # one step of a grid ending at T - 1
                if spacing == "trailing":
                    last = round(T - (n - 1) * T / n) - 1  # T/n - 1, rounded
                assert len(grid) == n + 1 and grid[-1] == -1 and grid[-2] == last
                assert all(a > b for a, b in zip(grid, grid[1:])) and grid[0] <= T - 1
                if spacing != "uniform":
                    assert grid[0] == T - 1


def test_refined_inversion_reaches_the_latent_that_ddim_decodes_back_to_the_input():
    """The fixed point of each refined step is the x_t whose DDIM step down lands on x_s, so decoding
    gives the input back exactly, where plain inversion with 10 steps is far off (max error 0.83;
    refined: 0.47, 0.14, 0.0019 after 1, 3 and 10 iterations, 3e-11 after 40)."""
    model = GaussianData(SCHEDULE, 0.4, 0.3)
    x = torch.rand((64, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    grid = levels(10, SCHEDULE)
    errors = [(sample_ddim(model, ddim_invert(model, x, SCHEDULE, grid, iterations=k), SCHEDULE, grid) - x).abs().max()
              .item() for k in (0, 1, 3, 10, 40)]
    assert errors[0] > 0.5 and errors == sorted(errors, reverse=True) and errors[-1] < 1e-9
    assert torch.equal(ddim_invert(model, x, SCHEDULE, grid, iterations=0), ddim_invert(model, x, SCHEDULE, grid))
    with pytest.raises(ValueError, match="iterations"):
        ddim_invert(model, x, SCHEDULE, grid, iterations=-1)


def test_refined_inversion_calls_the_model_1_plus_k_times_per_step_at_the_step_s_top():
    inner, calls = GaussianData(SCHEDULE, 0.4, 0.3), []

    def model(x, t):
        calls.append(int(t[0]))
        return inner(x, t)

    ddim_invert(model, torch.zeros((1, 1, 4, 4), dtype=torch.float64), SCHEDULE, [600, 300, 0, -1], iterations=2)
    assert calls == [0, 0, 0, 0, 300, 300, 300, 600, 600]  # from clean data: at the lowest level, then at the top
