import math

import torch

from mnistdiff.diffusion import cosine_schedule, eps_loss, linear_schedule, q_sample


def test_linear_schedule_is_the_ddpm_papers():
    s = linear_schedule()
    assert s.T == 1000 and s.betas.dtype == torch.float64 and s.alpha_bar.dtype == torch.float64
    assert s.betas[0].item() == 1e-4 and abs(s.betas[-1].item() - 0.02) < 1e-15
    # alpha_bar[0] = 1 - beta[0]: t = 0 is one step of noise.
    assert s.alpha_bar[0].item() == 1 - 1e-4
    assert math.isclose(s.alpha_bar[-1].item(), math.prod(1 - b for b in s.betas.tolist()), rel_tol=1e-12)
    assert s.alpha_bar[-1] < 1e-4


def test_cosine_schedule_is_decreasing_from_near_one():
    s = cosine_schedule(1000)
    assert s.betas.dtype == torch.float64
    assert (s.alpha_bar[1:] < s.alpha_bar[:-1]).all()
    assert s.alpha_bar[0] > 0.999 and s.alpha_bar[-1] < 1e-3
    assert s.betas.max() <= 0.999


def test_q_sample_has_the_marginal_variance():
    s = linear_schedule()
    x0 = torch.full((20000, 1, 1, 1), 0.5)
    t = torch.full((20000,), 300)
    xt = q_sample(s, x0, t, torch.randn_like(x0))
    ab = s.alpha_bar[300].item()
    assert abs(xt.mean().item() - math.sqrt(ab) * 0.5) < 0.02
    assert abs(xt.var().item() - (1 - ab)) < 0.03


def test_eps_loss_is_zero_for_the_true_noise_predictor():
    s = linear_schedule()
    x0 = torch.zeros(8, 1, 4, 4)  # q_sample(0, t, eps) = sqrt(1 - ab) eps: eps is recoverable
    oracle = lambda xt, t: xt / (1 - s.alpha_bar[t]).sqrt().float().view(-1, 1, 1, 1)  # noqa: E731
    assert eps_loss(oracle, s, x0).item() < 1e-10
    assert eps_loss(lambda xt, t: torch.zeros_like(xt), s, x0).item() > 0.5
