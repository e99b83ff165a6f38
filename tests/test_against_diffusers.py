"""Step-by-step agreement with diffusers' schedulers on the same model outputs."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from mnistdiff.diffusion import linear_schedule  # noqa: E402
from mnistdiff.samplers import ddim_update, ddpm_step, levels  # noqa: E402
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
