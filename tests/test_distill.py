"""Distillation: each loss's minimum is the exact teacher's map, known in closed form for Gaussian data;
the consistency boundary condition; a tiny student that trains, is killed, resumes and samples; refusals."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from exact import GaussianData
from test_kills import kill_later, step_of_latest

from mnistdiff import load_checkpoint, loading
from mnistdiff.cli import main
from mnistdiff.diffusion import linear_schedule
from mnistdiff.distill import ConsistencyLoss, ProgressiveLoss
from mnistdiff.distill.consistency import pseudo_huber
from mnistdiff.distill.levels import abar
from mnistdiff.distill.student import check_same_student, load_teacher, student_unet
from mnistdiff.distill.trajectories import record
from mnistdiff.generation import generate
from mnistdiff.model import UNet, precondition
from mnistdiff.model.unet import UNetConfig
from mnistdiff.samplers import ddim_invert, levels, sample_consistency, sample_ddim
from mnistdiff.samplers.common import distilled_method

SCHEDULE = linear_schedule(1000)
DATA = Path(__file__).parent / "data"
TEACHER = DATA / "tiny-old-checkpoint"  # an unconditional tiny model
TINY = UNetConfig(base=8, mults=(1, 2), blocks=1, attn_levels=(1,), heads=2, groups=4, dropout=0.0)


def x0_batch(n: int = 64, mean: float = 0.4, std: float = 0.3, seed: int = 0) -> torch.Tensor:
    return mean + std * torch.randn((n, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def eps_of_x0(x0_of):
    """The model(xt, t) -> eps whose x0 prediction is x0_of(xt, t) (Eq. 4 of Ho et al. 2020 solved for eps)."""
    def model(xt, t):
        ab = abar(SCHEDULE, t, xt)
        return (xt - ab.sqrt() * x0_of(xt, t)) / (1 - ab).sqrt()
    return model


# Progressive distillation

@pytest.mark.parametrize("steps", [1, 2, 4])
def test_a_student_of_an_exact_teacher_makes_its_two_steps_in_one_and_has_zero_loss(steps):
    teacher = GaussianData(SCHEDULE, 0.4, 0.3)
    loss = ProgressiveLoss(teacher, steps)
    student = eps_of_x0(lambda z, t: loss.target(z, t, SCHEDULE))  # the loss's own optimum
    x_T = torch.randn((8, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    one = sample_ddim(student, x_T, SCHEDULE, levels(steps, SCHEDULE, "trailing"))
    two = sample_ddim(teacher, x_T, SCHEDULE, levels(2 * steps, SCHEDULE, "trailing"))
    torch.testing.assert_close(one, two, atol=1e-9, rtol=1e-9)
    gen = torch.Generator().manual_seed(2)
    assert loss(student, SCHEDULE, x0_batch(), generator=gen).item() < 1e-18
    # Any other student does worse: the exact map is the minimum.
    for nudge in (1e-3, -1e-2):
        other = lambda z, t: student(z, t) + nudge  # noqa: E731
        assert loss(other, SCHEDULE, x0_batch(), generator=torch.Generator().manual_seed(2)).item() > 1e-8


def test_the_target_is_the_teacher_s_data_point_for_data_of_one_point():
    """DDIM with an exact eps of one-point data lands on the point from any level: so does x~."""
    loss = ProgressiveLoss(GaussianData(SCHEDULE, 0.25, 0.0), 2)
    z = torch.randn((6, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([999, 499, 999, 499, 499, 999])
    torch.testing.assert_close(loss.target(z, t, SCHEDULE), torch.full_like(z, 0.25), atol=1e-9, rtol=0)


def test_the_progressive_student_predicts_v():
    """An eps teacher's student predicts v (Salimans & Ho 2022): eps = sqrt(ab) v + sqrt(1 - ab) xt, so
    that the x0 a sampler takes from it is sqrt(ab) xt - sqrt(1 - ab) v. An EDM teacher's keeps EDM."""
    unet = student_unet(TINY, "progressive", 4, 1000)
    assert (unet.preconditioning, unet.distilled_steps) == ("v", 4)
    assert student_unet(UNetConfig(preconditioning="edm"), "progressive", 4, 1000).preconditioning == "edm"
    torch.manual_seed(0)
    network = UNet(unet).double().eval()
    model = precondition(network, SCHEDULE.alpha_bar).double()
    xt = torch.randn((3, 1, 28, 28), dtype=torch.float64)
    t = torch.tensor([999, 500, 3])
    ab = SCHEDULE.alpha_bar[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        v = network(xt, t)
        eps = model(xt, t)
        torch.testing.assert_close(eps, ab.sqrt() * v + (1 - ab).sqrt() * xt, atol=1e-5, rtol=0)  # alpha_bar in fp32
        x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
        torch.testing.assert_close(x0[1:], (ab.sqrt() * xt - (1 - ab).sqrt() * v)[1:], atol=1e-4, rtol=0)


# Consistency distillation

def point_consistency(mean: float):
    """The exact consistency function of one-point data's probability-flow ODE: in x = xt / sqrt(ab) and
    sigma = sqrt((1 - ab) / ab), f(x, sigma) = mean + (x - mean) sigma_min / sigma, sigma_min at t = 0."""
    sigma_min = math.sqrt((1 - SCHEDULE.alpha_bar[0]) / SCHEDULE.alpha_bar[0])

    def f(xt, t):
        ab = abar(SCHEDULE, t, xt)
        return mean + (xt / ab.sqrt() - mean) * sigma_min / ((1 - ab) / ab).sqrt()
    return f


def test_the_consistency_loss_is_zero_for_the_exact_consistency_function():
    teacher = GaussianData(SCHEDULE, 0.25, 0.0)
    student = eps_of_x0(point_consistency(0.25))
    loss = ConsistencyLoss(teacher, target=student, levels=12)
    x0 = torch.full((32, 1, 4, 4), 0.25, dtype=torch.float64)
    assert loss(student, SCHEDULE, x0, generator=torch.Generator().manual_seed(0)).item() < 1e-9
    other = lambda x, t: student(x, t) * 1.01  # noqa: E731
    assert loss(other, SCHEDULE, x0, generator=torch.Generator().manual_seed(0)).item() > 1e-4


def test_pseudo_huber_is_zero_at_equality_and_near_l2_far_away():
    a = torch.zeros(2, 1, 4, 4)
    assert pseudo_huber(a, a).tolist() == [0.0, 0.0]
    far = pseudo_huber(a, a + 1.0)
    torch.testing.assert_close(far, torch.full((2,), 4.0), atol=0.003, rtol=0)


def test_the_consistency_model_keeps_the_boundary_condition_exactly():
    """f(x, t = 0) = x: the wrapped network's eps is exactly 0 at t = 0, whatever its weights, so
    every sampler's x0 there is xt / sqrt(alpha_bar[0])."""
    torch.manual_seed(0)
    unet = student_unet(TINY, "consistency", 1, 1000)
    model = precondition(UNet(unet), SCHEDULE.alpha_bar.float()).eval()
    xt = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(xt, torch.zeros(4, dtype=torch.long)), torch.zeros_like(xt))
        assert model(xt, torch.full((4,), 1, dtype=torch.long)).abs().max() > 0
        out = sample_consistency(model, xt, SCHEDULE, [0, -1])
    torch.testing.assert_close(out, xt / math.sqrt(SCHEDULE.alpha_bar[0]), atol=0, rtol=1e-6)


@pytest.mark.parametrize("grid", [[999, -1], [999, 499, -1], [999, 749, 499, 249, -1]])
def test_consistency_sampling_of_one_point_data_returns_the_point(grid):
    model = GaussianData(SCHEDULE, 0.25, 0.0)
    x_T = torch.randn((4, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    seen = []
    x0 = sample_consistency(model, x_T, SCHEDULE, grid, generator=torch.Generator().manual_seed(1),
                            callback=lambda t, x, pred: seen.append(t))
    torch.testing.assert_close(x0, torch.full_like(x0, 0.25), atol=1e-9, rtol=0)
    assert seen == grid[1:]


# Refusals

def test_bad_students_are_refused_in_one_line():
    for steps in (3, 6, 0, 1000):
        with pytest.raises(ValueError, match="power of two"):
            student_unet(TINY, "progressive", steps, 1000)
    with pytest.raises(ValueError, match="half as many, --student-steps 2"):
        student_unet(student_unet(TINY, "progressive", 4, 1000), "progressive", 1, 1000)
    student_unet(student_unet(TINY, "progressive", 4, 1000), "progressive", 2, 1000)  # a halving: fine
    with pytest.raises(ValueError, match="unconditional teacher"):
        student_unet(UNetConfig(classes=10), "consistency", 1, 1000)
    with pytest.raises(ValueError, match="not itself a student"):
        student_unet(student_unet(TINY, "progressive", 4, 1000), "consistency", 1, 1000)
    with pytest.raises(ValueError, match="unknown method"):
        student_unet(TINY, "rectified", 1, 1000)


def test_a_resumed_student_keeps_its_method_steps_and_teacher_whose_weights_must_not_change():
    record = {"method": "progressive", "steps": 4, "teacher": {"path": str(TEACHER.resolve()), "sha256": "0" * 64}}
    config = {"student": record}
    check_same_student(config, None, None, None, None)
    check_same_student(config, "progressive", TEACHER, 4, None)
    for given, message in (({"method": "consistency"}, "--method consistency: the run's is progressive"),
                           ({"steps": 2}, "--student-steps 2: the run's is 4"),
                           ({"teacher": DATA / "tiny-edm-checkpoint"}, "--teacher .*tiny-edm-checkpoint")):
        args = {"method": None, "teacher": None, "steps": None, "levels": None} | given
        with pytest.raises(ValueError, match=message):
            check_same_student(config, args["method"], args["teacher"], args["steps"], args["levels"])
    with pytest.raises(loading.CheckpointError, match="other weights than when the run began"):
        load_teacher(record["teacher"], "cpu")


def test_a_student_refuses_more_steps_and_inversion():
    torch.manual_seed(0)
    model = precondition(UNet(student_unet(TINY, "progressive", 2, 1000)), SCHEDULE.alpha_bar).eval()
    with pytest.raises(ValueError, match="distilled for 2 step"):
        generate(model, SCHEDULE, 2, steps=4)
    assert generate(model, SCHEDULE, 2, steps=1).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="DDIM inversion needs the teacher"):
        ddim_invert(model, torch.zeros(1, 1, 28, 28), SCHEDULE, levels(2, SCHEDULE))


def test_a_student_samples_its_own_way_by_default(monkeypatch):
    """generate() without a sampler gives a student its method's sampler, its steps and the trailing grid."""
    from mnistdiff import generation

    calls = []
    for method, sampler in (("progressive", "ddim"), ("consistency", "consistency")):
        torch.manual_seed(0)
        model = precondition(UNet(student_unet(TINY, method, 2, 1000)), SCHEDULE.alpha_bar).eval()
        monkeypatch.setitem(generation.SAMPLERS, sampler, lambda m, x, s, grid, **k: calls.append(grid) or x)
        generate(model, SCHEDULE, 1)
        assert calls.pop() == [999, 499, -1]
        assert generation.model_defaults(model, None, None, None) == (sampler, 2, "trailing")


# A tiny student run, end to end

def distill_process(run: Path, data: Path, resume: bool, *flags: str) -> subprocess.Popen:
    src = Path(__file__).resolve().parent.parent / "src"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    argv = [sys.executable, "-m", "mnistdiff", "distill", "--teacher", str(TEACHER), "--steps", "12",
            "--checkpoint-every", "3", "--batch-size", "8", "--grid-images", "4", "--sample-every", "1000",
            "--precision", "fp32", *flags, "--data-dir", str(data), "--out", str(run)]
    return subprocess.Popen(argv + (["--resume"] if resume else []), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


@pytest.mark.parametrize("method", ["progressive", "consistency", "trajectory"])
def test_a_killed_student_resumes_as_an_unbroken_one_and_samples(method, idx_folder, tmp_path, capsys):
    flags = ("--method", method, "--student-steps", "2") + (("--levels", "8") if method == "consistency" else ())
    if method == "trajectory":
        record(tmp_path / "rec", teacher=TEACHER, n=16, steps=2, solver_steps=4, chunk=8, progress=False)
        flags += ("--trajectories", str(tmp_path / "rec"), "--own-states", "0.5")
    straight, run = tmp_path / "straight", tmp_path / "killed"
    proc = distill_process(straight, idx_folder, False, *flags)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()[-2000:]
    outcome = kill_later(distill_process(run, idx_folder, False, *flags), run, 0.05)
    assert outcome == "killed" and step_of_latest(run) < 12
    proc = distill_process(run, idx_folder, True)  # the run's own method, teacher and steps
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()[-2000:]
    _, a = loading.read(loading.find(straight))
    _, b = loading.read(loading.find(run))
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][name], b[part][name]) for name in a[part]), part

    model, _, config = load_checkpoint(run)
    assert config["student"]["method"] == method and config["student"]["steps"] == 2
    assert config["student"]["teacher"]["path"] == str(TEACHER.resolve())
    assert model.config.distilled_steps == 2
    exported = tmp_path / "exported"
    assert main(["export", "--checkpoint", str(run), "--out", str(exported)]) == 0
    assert main(["sample", "--checkpoint", str(exported), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["sample", "--checkpoint", str(exported), "--steps", "1", "--n", "4",
                 "--out", str(tmp_path / "s1.png")]) == 0
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(exported), "--steps", "4", "--out", str(tmp_path / "s4.png")]) == 2
    assert "distilled for 2 step(s)" in capsys.readouterr().err
    assert main(["invert", "0", "--checkpoint", str(exported), "--data-dir", str(idx_folder),
                 "--out", str(tmp_path / "z.npz")]) == 2
    assert "DDIM inversion needs the teacher" in capsys.readouterr().err


def test_distill_refuses_bad_arguments_in_one_line(tmp_path, idx_folder, capsys):
    def refused(*argv: str) -> str:
        assert main(["distill", "--data-dir", str(idx_folder), *argv]) == 2
        return capsys.readouterr().err.strip()

    out = ["--out", str(tmp_path / "r")]
    assert "power of two" in refused("--method", "progressive", "--teacher", str(TEACHER), "--student-steps", "3", *out)
    conditional = str(DATA / "tiny-cond-checkpoint")
    assert "unconditional teacher" in refused("--method", "consistency", "--teacher", conditional,
                                              "--student-steps", "1", *out)
    assert "needs --method and --student-steps" in refused("--teacher", str(TEACHER), *out)
    assert "no checkpoint" in refused("--method", "progressive", "--teacher", str(tmp_path / "none"),
                                      "--student-steps", "2", *out)
    assert not (tmp_path / "r").exists()
    student, data = tmp_path / "student", ["--data-dir", str(idx_folder)]
    assert main(["distill", "--method", "progressive", "--teacher", str(TEACHER), "--student-steps", "2",
                 "--steps", "1", "--batch-size", "4", "--grid-images", "2", *data, "--out", str(student)]) == 0
    assert main(["train", "--init-from", str(student), *data, "--out", str(tmp_path / "t")]) == 2
    assert "a distilled student, not a diffusion model to train on" in capsys.readouterr().err


def test_progressive_rounds_halve_the_steps_each_student_the_next_teacher(idx_folder, tmp_path, capsys):
    out = tmp_path / "rounds"
    argv = ["distill", "--method", "progressive", "--teacher", str(TEACHER), "--student-steps", "4", "--down-to", "1",
            "--steps", "2", "--batch-size", "4", "--grid-images", "2", "--precision", "fp32",
            "--data-dir", str(idx_folder), "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["steps-0001", "steps-0002", "steps-0004"]
    teachers = [str(TEACHER.resolve())]
    for steps in (4, 2, 1):
        _, _, config = load_checkpoint(out / f"steps-{steps:04d}")
        assert config["unet"]["distilled_steps"] == config["student"]["steps"] == steps
        assert config["student"]["teacher"]["path"] == teachers[-1]
        teachers.append(str(loading.find(out / f"steps-{steps:04d}").resolve()))
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0  # every round done: the last one continues, with nothing left to do
    assert capsys.readouterr().out.strip() == f"checkpoint: {teachers[-1]}"
    assert main(argv[:-2] + ["--out", str(tmp_path / "other"), "--down-to", "3"]) == 2
    assert "--down-to must be a power of two" in capsys.readouterr().err


def test_fast_names_the_shipped_student_which_samples_its_own_way(tmp_path, capsys):
    model, _, config = load_checkpoint("fast")
    assert config["student"]["method"] == distilled_method(model)  # from distilled_by, or older students' default
    assert model.config.distilled_steps == config["student"]["steps"]
    assert main(["sample", "--checkpoint", "fast", "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["sample", "--checkpoint", "fast", "--steps", "8", "--out", str(tmp_path / "s8.png")]) == 2
    assert f"distilled for {model.config.distilled_steps} step(s)" in capsys.readouterr().err


def test_without_a_shipped_student_fast_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(loading.SHIPPED, "fast", tmp_path / "none" / "fast-mnist")
    with pytest.raises(FileNotFoundError, match="no fast model is shipped"):
        load_checkpoint("fast")
    assert main(["sample", "--checkpoint", "fast", "--out", str(tmp_path / "s.png")]) == 2
    assert "no fast model is shipped in this installation" in capsys.readouterr().err
