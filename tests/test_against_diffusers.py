"""Step-by-step agreement with diffusers' schedulers on the same model outputs."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from mnistdiff.diffusion import linear_schedule  # noqa: E402
from mnistdiff.samplers import ddim_update, ddpm_step, levels, sample_dpm_solver_sde, sample_heun  # noqa: E402
from mnistdiff.samplers.common import alpha_bar  # noqa: E402

SCHEDULE = linear_schedule()


def _random(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("eta, clip", [(0.0, False), (1.0, False), (0.0, True), (1.0, True)])
def test_ddim_matches_diffusers_ddim_scheduler(eta, clip):
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                  beta_schedule="linear", clip_sample=clip, clip_sample_range=1.0,
                                  set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading")
    ref.set_timesteps(50)
    grid = levels(50, SCHEDULE)
    assert ref.timesteps.tolist() == grid[:-1]  # diffusers leaves out the clean end
    x = 3 * _random((2, 1, 8, 8), 0)  # wide enough that clipping x0 matters
    for i, (t, t_next) in enumerate(zip(grid, grid[1:])):
        eps, noise = _random(x.shape, 100 + i), _random(x.shape, 200 + i)
        expected = ref.step(eps, t, x, eta=eta, variance_noise=noise).prev_sample
        ours = ddim_update(x, eps, alpha_bar(SCHEDULE, t), alpha_bar(SCHEDULE, t_next), eta=eta, noise=noise,
                           clip_x0=clip)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
        x = expected


@pytest.mark.parametrize("variance, clip", [("posterior", False), ("beta", False), ("posterior", True)])
def test_ddpm_matches_diffusers_ddpm_scheduler(variance, clip):
    kind = {"posterior": "fixed_small", "beta": "fixed_large"}[variance]
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                  beta_schedule="linear", clip_sample=clip, clip_sample_range=1.0,
                                  variance_type=kind)
    ref.set_timesteps(1000)
    x = 3 * _random((2, 1, 8, 8), 1)
    for t in (999, 998, 700, 300, 50, 1, 0):
        eps = _random(x.shape, 300 + t)
        # Same noise on both sides: diffusers draws it from the generator with torch.randn.
        expected = ref.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(t))
        ours = ddpm_step(x, eps, SCHEDULE, t, noise, variance=variance, clip_x0=clip)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


def _eps_model(seed: int):
    """A noise predictor that depends on x_t and t, smoothly: the same numbers whoever calls it."""
    weights = _random((1, 1, 8, 8), seed).double()

    def model(x, t):
        level = int(torch.as_tensor(t).flatten()[0].round())  # diffusers' Heun passes float timesteps
        return (torch.tanh(x.double() * weights) * (0.5 + level / 2000)).to(x.dtype)

    return model


@pytest.mark.parametrize("n", [1, 3, 7, 10, 16, 50])
def test_trailing_levels_match_diffusers_trailing_spacing(n):
    ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                                beta_schedule="linear", timestep_spacing="trailing")
    ref.set_timesteps(n)
    assert ref.timesteps.tolist() == levels(n, SCHEDULE, "trailing")[:-1]


@pytest.mark.parametrize("n, spacing", [(5, "logsnr"), (10, "trailing"), (20, "logsnr")])
def test_dpm_solver_sde_matches_diffusers_sde_dpmsolver_pp(n, spacing):
    """Step by step against DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++") on the same model
    and the same noise (diffusers' step takes it as variance_noise; its last step, to sigma = 0, draws none)."""
    ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                                beta_schedule="linear", algorithm_type="sde-dpmsolver++",
                                                solver_order=2, solver_type="midpoint", final_sigmas_type="zero")
    grid = levels(n, SCHEDULE, spacing)
    ref.set_timesteps(timesteps=grid[:-1])
    model, x_T = _eps_model(3), _random((2, 1, 8, 8), 4)
    ours = []
    sample_dpm_solver_sde(model, x_T, SCHEDULE, grid, generator=torch.Generator().manual_seed(5),
                          callback=lambda t, x, x0: ours.append(x))
    noise, x = torch.Generator().manual_seed(5), x_T
    for i, t in enumerate(ref.timesteps):
        last = i == len(ref.timesteps) - 1
        z = torch.zeros_like(x) if last else torch.randn(x.shape, generator=noise)
        x = ref.step(model(x, t), t, x, variance_noise=z).prev_sample
        torch.testing.assert_close(ours[i], x, atol=3e-4, rtol=1e-4)  # float32 arithmetic on both sides


@pytest.mark.parametrize("n, spacing", [(4, "logsnr"), (10, "trailing")])
def test_heun_matches_diffusers_heun_discrete_scheduler(n, spacing):
    """HeunDiscreteScheduler on the same levels: 2n - 1 model calls, at the same (whole) timesteps."""
    ref = diffusers.HeunDiscreteScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                          beta_schedule="linear")
    grid = levels(n, SCHEDULE, spacing)
    ref.set_timesteps(timesteps=grid[:-1])
    model, x_T = _eps_model(6), _random((2, 1, 8, 8), 7)
    ours = sample_heun(model, x_T, SCHEDULE, grid)
    x = x_T * (ref.sigmas[0] ** 2 + 1) ** 0.5  # x_T is x_t; diffusers steps x_sigma = x_t / sqrt(alpha_bar)
    for t in ref.timesteps:
        x = ref.step(model(ref.scale_model_input(x, t), t), t, x).prev_sample
    assert len(ref.timesteps) == 2 * n - 1
    torch.testing.assert_close(ours, x, atol=1e-4, rtol=1e-4)
