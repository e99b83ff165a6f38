"""Latent statistics against the closed forms of N(0, I), and the latent study end to end."""

import math

import torch

from exact import GaussianData
from explore_support import fixture_digits
from mnistdiff.diffusion import linear_schedule
from mnistdiff.experiments.latents import class_distances, ks_normal, latent_study, latent_stats, to_markdown
from mnistdiff.samplers import levels

SCHEDULE = linear_schedule()


def test_noise_has_the_statistics_of_noise_and_shrunk_noise_does_not():
    z = torch.randn((400, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = latent_stats(z)
    assert abs(s["norm_over_sqrt_dim"] - 1) < 0.01 and abs(s["std"] - 1) < 0.01 and abs(s["pixel_std"] - 1) < 0.01
    assert abs(s["excess_kurtosis"]) < 0.05 and s["ks_distance"] < 0.005 and s["ks_p_value"] > 0.01
    small = latent_stats(0.35 * z)
    assert abs(small["std"] - 0.35) < 0.005 and small["ks_p_value"] < 1e-6
    # The KS distance of 0.35 N(0, 1) to N(0, 1) is max |Phi(x / 0.35) - Phi(x)|, where the two densities
    # cross: x = 0.35 sqrt(2 ln 0.35 / (0.35^2 - 1)).
    x = 0.35 * math.sqrt(2 * math.log(0.35) / (0.35**2 - 1))
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    assert abs(small["ks_distance"] - (phi(x / 0.35) - phi(x))) < 0.005


def test_ks_of_a_uniform_grid_of_quantiles_is_half_a_step():
    m = 1000
    quantiles = torch.special.ndtri((torch.arange(m, dtype=torch.float64) + 0.5) / m)
    d, p = ks_normal(quantiles)
    assert abs(d - 0.5 / m) < 1e-9 and p > 0.99


def test_class_distances_find_the_nearer_class():
    latents = torch.tensor([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    labels = torch.tensor([8, 8, 3, 4])
    d = class_distances(torch.tensor([[1.0, 0.5]]), latents, labels, target=8)
    assert abs(d["to_target"] - math.hypot(1, 0.5)) < 1e-6 and abs(d["to_others"] - math.hypot(9, 0.5)) < 1e-6
    assert d["nearest_is_target"] == 1.0


def test_latent_study_on_the_closed_form_model():
    """Gaussian data with the digits' own spread: refined latents decode back, so they differ from plain ones."""
    images, labels = fixture_digits()
    model = GaussianData(SCHEDULE, 0.0, 0.6)
    study = latent_study(model, SCHEDULE, images, labels, levels(5, SCHEDULE), iterations=(0, 3), per_class=3)
    assert set(study["by_iterations"]) == {"0", "3"} and study["by_iterations"]["3"]["model_calls_a_step"] == 4
    for entry in study["by_iterations"].values():
        assert entry["latents"]["latents"] == 30
        assert set(entry["mixes"]) == {"linear", "slerp", "linear-norm"}
        assert all(m["latents"] == 3 and 0 <= m["nearest_is_target"] <= 1 for m in entry["mixes"].values())
    assert study["by_iterations"]["0"]["latents"] != study["by_iterations"]["3"]["latents"]
    table = to_markdown(study)
    assert "| - | N(0, I) noise |" in table and "| 3 | slerp mix |" in table and "nearest is an 8" in table
