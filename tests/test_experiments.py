import math

import pytest
import torch

from exact import GaussianData
from mnistdiff.diffusion import linear_schedule
from mnistdiff.experiments import RULES, linear, linear_norm, merge, slerp
from mnistdiff.samplers import ddim_invert, levels, sample_ddim

SCHEDULE = linear_schedule()


def gaussians(n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, 1, 28, 28), generator=gen, dtype=torch.float64), torch.randn((n, 1, 28, 28), generator=gen, dtype=torch.float64)


def norms(x):
    return x.flatten(1).norm(dim=1)


def test_slerp_keeps_the_norm_of_equal_norm_inputs_and_hits_the_endpoints():
    a, b = gaussians()
    b = b * (norms(a) / norms(b)).view(-1, 1, 1, 1)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    for w in (0.25, 0.5, 0.8):
        torch.testing.assert_close(norms(slerp(a, b, w)), norms(a))


def test_slerp_of_parallel_inputs_is_linear():
    a, _ = gaussians()
    torch.testing.assert_close(slerp(a, 2 * a, 0.5), linear(a, 2 * a, 0.5))


def test_linear_mix_of_independent_latents_shrinks_and_norm_rule_restores():
    a, b = gaussians(n=64)
    ratio = (norms(linear(a, b, 0.5)) / norms(a)).mean().item()
    assert abs(ratio - math.sqrt(0.5)) < 0.02
    torch.testing.assert_close(norms(linear_norm(a, b, 0.5)), 0.5 * norms(a) + 0.5 * norms(b))


@pytest.mark.parametrize("rule", list(RULES))
def test_merge_with_weight_0_or_1_gives_back_the_inversion_of_a_or_b(rule):
    model = GaussianData(SCHEDULE, 0.1, 0.5)
    a, b = (x.clamp(-1, 1) for x in gaussians(n=2, seed=1))
    grid = levels(20, SCHEDULE)
    out = merge(model, SCHEDULE, a, b, [0.0, 1.0], rule=rule, levels=grid, clip_x0=False)
    decode_a = sample_ddim(model, ddim_invert(model, a, SCHEDULE, grid), SCHEDULE, grid)
    torch.testing.assert_close(out["latent_mix"][0], decode_a)
    torch.testing.assert_close(out["latent_mix"][0], out["recon_a"])
    torch.testing.assert_close(out["latent_mix"][1], out["recon_b"])
    torch.testing.assert_close(out["pixel_mix"][0], a)
    torch.testing.assert_close(out["pixel_mix"][1], b)


def test_unknown_rule():
    a, b = gaussians(n=1)
    with pytest.raises(ValueError, match="mixing rule"):
        merge(None, SCHEDULE, a, b, [0.5], rule="cubic", levels=[500, 0, -1])


def test_invert_merge_and_figures_from_the_cli(idx_folder, tmp_path):
    import numpy as np
    from PIL import Image

    from mnistdiff.cli import main

    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "5", "--data-dir", str(idx_folder), "--out", str(run)]) == 0
    png = tmp_path / "digit.png"
    Image.fromarray(np.full((56, 56), 255, dtype=np.uint8)).save(png)  # dark-on-light, 56x56: converted
    common = ["--checkpoint", str(run), "--steps", "5", "--data-dir", str(idx_folder)]
    latents = tmp_path / "latents.npz"
    assert main(["invert", "0", str(png), *common, "--inversion-iterations", "1", "--out", str(latents)]) == 0
    assert np.load(latents)["latents"].shape == (2, 1, 28, 28)
    assert main(["invert", "--decode", str(latents), *common, "--out", str(tmp_path / "decoded.png")]) == 0
    assert main(["merge", "0", "1", *common, "--rule", "slerp", "--weights", "0,0.5,1", "--inversion-iterations", "2",
                 "--out", str(tmp_path / "merge.png")]) == 0
    assert main(["figure", "forward", "3", *common, "--out", str(tmp_path / "forward")]) == 0
    assert main(["figure", "interpolate", "0", "1", *common, "--frames", "4", "--out", str(tmp_path / "interp")]) == 0
    assert main(["figure", "trajectory", *common, "--n", "4", "--out", str(tmp_path / "traj")]) == 0
    for name in ("decoded.png", "merge.png", "forward.png", "interp.png", "interp.gif", "traj.png", "traj.gif"):
        assert (tmp_path / name).stat().st_size > 100, name
    assert Image.open(tmp_path / "interp.gif").n_frames >= 4
    assert main(["figure", "interpolate", "0", *common]) == 2
    assert main(["invert", "99999", *common]) == 2


def test_reconstruction_and_merge_study_from_the_cli(idx_folder, tmp_path):
    import json

    from mnistdiff.cli import main

    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "5", "--data-dir", str(idx_folder), "--out", str(run)]) == 0
    common = ["--checkpoint", str(run), "--data-dir", str(idx_folder)]
    out = tmp_path / "recon"
    assert main(["reconstruction", *common, "--n", "4", "--steps", "2,5", "--inversion-iterations", "0,2",
                 "--out", str(out)]) == 0
    rows = json.loads((tmp_path / "recon.json").read_text())["rows"]
    assert [(r["steps"], r["iterations"], r["model_calls"]) for r in rows] == [(2, 0, 4), (5, 0, 10), (2, 2, 8),
                                                                               (5, 2, 20)]
    assert all(0 <= r["mse"] <= 1 for r in rows)
    assert "| MNIST, this model, K = 2 (4 S calls) |" in (tmp_path / "recon.md").read_text()
    # The generated data set has random labels 0..9; two pairs per class need two images of each.
    out = tmp_path / "study"
    result = main(["merge-study", *common, "--steps", "3", "--per-class", "1", "--inversion-iterations", "1",
                   "--out", str(out)])
    assert result == 0
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["inversion_iterations"] == 1 and "refined with K = 1 iterations" in (tmp_path / "study.md").read_text()
    assert set(study["methods"]) == {"linear", "slerp", "linear-norm", "pixel"}
    for m in study["methods"].values():
        assert m["images"] == 45 and len(m["counts"]) == 45
        assert abs(m["share_a"] + m["share_b"] + m["share_third"] - 1) < 1e-9
    assert "2 + 5 -> 8" in (tmp_path / "study.md").read_text()
    assert (tmp_path / "study.png").stat().st_size > 1000


def test_reconstruction_error_falls_with_steps_for_the_exact_model():
    from mnistdiff.experiments.reconstruction import reconstruction_errors

    model = GaussianData(SCHEDULE, 0.1, 0.5)
    x = torch.rand((8, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = reconstruction_errors(model, SCHEDULE, x, (10, 100, 1000), progress=False)
    errors = [r["mse"] for r in rows]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4


def test_refined_inversion_rows_reconstruct_with_few_steps_and_state_their_model_calls():
    from mnistdiff.experiments.reconstruction import reconstruction_errors, to_markdown

    model = GaussianData(SCHEDULE, 0.1, 0.5)
    x = torch.rand((8, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = reconstruction_errors(model, SCHEDULE, x, (10,), progress=False, iterations=(0, 20))
    assert [(r["iterations"], r["model_calls"]) for r in rows] == [(0, 20), (20, 220)]
    assert rows[1]["mse"] < 1e-9 < 1e-3 < rows[0]["mse"]
    assert "| MNIST, this model, K = 20 (22 S calls) |" in to_markdown(rows)


def test_merge_with_refined_inversion_decodes_its_ends_back_to_the_inputs():
    model = GaussianData(SCHEDULE, 0.1, 0.5)
    a, b = (x.clamp(-1, 1) for x in gaussians(n=2, seed=1))
    out = merge(model, SCHEDULE, a, b, [0.0, 1.0], levels=levels(10, SCHEDULE), iterations=30)
    torch.testing.assert_close(out["recon_a"], a, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["latent_mix"][1], b, atol=1e-6, rtol=0)


def test_trajectory_shows_x_t_and_the_predicted_x0_along_the_way():
    from mnistdiff.experiments.figures import trajectory
    from mnistdiff.samplers import levels

    model = GaussianData(SCHEDULE, 0.2, 0.1)
    x_T = torch.randn((5, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    frames, panel = trajectory(model, SCHEDULE, x_T, levels(20, SCHEDULE), columns=6, rows=2)
    assert len(frames) == 21  # x_T, then after each step
    assert [label for label, _ in panel] == ["#0 x_t", "#0 predicted x0", "#1 x_t", "#1 predicted x0"]
    x_t, x0 = panel[0][1], panel[1][1]
    assert [c for c, _ in x_t][0] == "t = 900" and x_t[-1][0] == "clean" and len(x_t) == 6
    assert x0[0][0] == "at t = 950" and x0[-1][0] == "at t = 0"
    # Early on x_t is mostly noise while the predicted x0 is already near the data mean.
    assert (x0[0][1] - 0.2).abs().mean() < 0.5 * (x_t[0][1] - 0.2).abs().mean()
    torch.testing.assert_close(x_t[-1][1], x0[-1][1])


def test_every_experiment_command_places_its_model(idx_folder, tmp_path, monkeypatch):
    """--device, --precision and --compile reach every model the experiments run, through place_model."""
    from mnistdiff.cli import commands, main
    from mnistdiff.runtime import Runner

    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "5", "--data-dir", str(idx_folder), "--out", str(run)]) == 0
    placed = []
    place = commands.place_model
    monkeypatch.setattr(commands, "place_model", lambda model, args: placed.append(place(model, args)) or placed[-1])
    common = ["--checkpoint", str(run), "--data-dir", str(idx_folder), "--device", "cpu", "--precision", "bf16"]
    steps = ["--steps", "2"]
    for argv in (["invert", "0", *steps, "--out", str(tmp_path / "z.npz")],
                 ["merge", "0", "1", *steps, "--weights", "0.5", "--out", str(tmp_path / "m.png")],
                 ["figure", "trajectory", *steps, "--n", "2", "--out", str(tmp_path / "traj")],
                 ["reconstruction", "--n", "2", "--steps", "2", "--out", str(tmp_path / "recon")]):
        assert main([*argv, *common]) == 0, argv
    assert len(placed) == 4
    assert all(isinstance(m, Runner) and m.precision == "bf16" for m in placed)
