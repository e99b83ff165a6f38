import math

import pytest
import torch

from mnistdiff.diffusion import EpsLoss, MinSnrLoss, cosine_schedule, linear_schedule, q_sample


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
    # fp32: 1 - alpha_bar near t = 0 keeps only ~4 digits, so "zero" is zero to about 1e-7 per element.
    for seed in range(5):
        assert EpsLoss()(oracle, s, x0, generator=torch.Generator().manual_seed(seed)).item() < 1e-6
    assert EpsLoss()(lambda xt, t: torch.zeros_like(xt), s, x0).item() > 0.5


def test_min_snr_weighting():
    s = linear_schedule()
    x0 = torch.rand(64, 1, 8, 8) * 2 - 1
    zero = lambda xt, t: torch.zeros_like(xt)  # noqa: E731  error = eps, whose mean square is about 1 per image
    plain = EpsLoss()(zero, s, x0, generator=torch.Generator().manual_seed(0))
    # gamma above every step's SNR: every weight is 1, the plain loss.
    snr = s.alpha_bar / (1 - s.alpha_bar)
    huge = MinSnrLoss(gamma=float(snr.max()) * 2)(zero, s, x0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(huge, plain)
    # gamma = 5: the same t and eps, each image's error times min(SNR_t, 5) / SNR_t.
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, s.T, (64,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    weight = snr[t].clamp(max=5) / snr[t]
    expected = (weight * eps.pow(2).flatten(1).mean(1)).mean().float()
    got = MinSnrLoss(gamma=5.0)(zero, s, x0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got, expected)
    assert got < plain  # high-SNR steps (small t) count less


def test_append_dims_shapes_per_sample_values_to_broadcast():
    from mnistdiff.tensors import append_dims

    values = torch.tensor([1.0, 2.0, 3.0])
    out = append_dims(values, 4)
    assert out.shape == (3, 1, 1, 1)
    torch.testing.assert_close(out * torch.ones(3, 1, 2, 2), values.view(3, 1, 1, 1).expand(3, 1, 2, 2))
    assert append_dims(values, 1).shape == (3,)
    with pytest.raises(ValueError):
        append_dims(torch.ones(2, 2), 1)
