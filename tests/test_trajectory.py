"""Trajectory distillation: the recorded states are the teacher's solver's, a killed recording continues,
the loss's minimum is the exact flow map on Gaussian data, and a tiny student trains from a recording."""

import pytest
import torch
from safetensors.torch import load_file
from test_distill import DATA, SCHEDULE, TEACHER, eps_of_x0

from mnistdiff import load_checkpoint, loading
from mnistdiff.cli import main
from mnistdiff.distill.levels import abar
from mnistdiff.distill.progressive import two_step_target
from mnistdiff.distill.trajectories import load, record
from mnistdiff.distill.trajectory import TrajectoryLoss
from mnistdiff.samplers import levels, sample_ddim, sample_dpm_solver
from mnistdiff.samplers.common import distilled_method

MEAN, STD = 0.2, 0.2  # data, and the x0 of every step, within [-1, 1], where students clip


def on_trajectory(u: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
    """The state at level t of the probability-flow ODE of N(MEAN, STD^2) data through standard score u:
    for Gaussian data the ODE keeps (x - sqrt(ab) MEAN) / sqrt(ab STD^2 + 1 - ab) fixed."""
    t = torch.as_tensor(t).expand(len(u))
    ab = abar(SCHEDULE, t, u.double())
    return ab.sqrt() * MEAN + (ab * STD**2 + 1 - ab).sqrt() * u


def standard_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    ab = abar(SCHEDULE, t, x)
    return (x - ab.sqrt() * MEAN) / (ab * STD**2 + 1 - ab).sqrt()


@pytest.mark.parametrize("own_states", [0.0, 1.0])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_the_exact_flow_map_has_zero_loss_and_its_ddim_steps_follow_the_trajectories(steps, own_states):
    grid = levels(4, SCHEDULE, "trailing")  # recorded for 4 steps, which serve 2 and 1
    u = torch.randn((32, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    states = torch.stack([on_trajectory(u, t) for t in grid], 1)
    own = levels(steps, SCHEDULE, "trailing")
    following = dict(zip(own, own[1:]))

    def exact_x0(z, t):
        """The x0 whose DDIM step from (z, t) lands on z's trajectory at the student's next level."""
        t2 = torch.tensor([following[int(level)] for level in t])
        return two_step_target(z, on_trajectory(standard_score(z, t), t2), t, t2, SCHEDULE)

    student = eps_of_x0(exact_x0)
    batch = torch.zeros((16, 1, 4, 4), dtype=torch.float64)
    # With own states, the exact map's own steps stay on the trajectories: still no loss.
    loss = TrajectoryLoss(states, grid, steps, own_states, ema=student)
    assert loss(student, SCHEDULE, batch, generator=torch.Generator().manual_seed(1)).item() < 1e-18
    for nudge in (1e-3, -1e-2):
        other = lambda z, t: student(z, t) + nudge  # noqa: E731
        loss = TrajectoryLoss(states, grid, steps, own_states, ema=other)
        assert loss(other, SCHEDULE, batch, generator=torch.Generator().manual_seed(1)).item() > 1e-8
    torch.testing.assert_close(sample_ddim(student, states[:, 0], SCHEDULE, own), states[:, -1], atol=1e-9, rtol=0)


def test_own_states_are_the_states_the_ema_reaches_in_its_own_ddim_steps():
    grid = levels(4, SCHEDULE, "trailing")
    u = torch.randn((8, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    states = torch.stack([on_trajectory(u, t) for t in grid], 1)
    ema = lambda z, t: standard_score(z, t) + 0.05 * z  # noqa: E731  (off the trajectories)
    reached = {grid[0]: states[:, 0]}

    def keep(t, x, x0):
        reached[t] = x.clone()

    sample_ddim(ema, states[:, 0], SCHEDULE, grid, clip_x0=True, callback=keep)
    loss = TrajectoryLoss(states, grid, 4, 1.0, ema=ema)
    stop = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    rolled = loss._roll_out(states[:, 0].clone(), stop, grid, SCHEDULE)
    want = torch.stack([reached[grid[k]][i] for i, k in enumerate(stop.tolist())])
    torch.testing.assert_close(rolled, want, atol=1e-12, rtol=0)
    assert (reached[grid[2]] - states[:, 2]).abs().max() > 1e-3  # its own states are off the recording


def test_a_recording_keeps_the_solver_s_states_and_a_killed_one_continues(tmp_path):
    out = tmp_path / "rec"
    record(out, teacher=TEACHER, n=6, steps=2, solver_steps=4, chunk=4, progress=False)
    states, manifest = load(out)
    assert states.shape == (6, 3, 1, 28, 28) and manifest["levels"] == [999, 499, -1]
    model, schedule, _ = load_checkpoint(TEACHER)
    x_T = torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(states[:4, 0], x_T)
    solved = sample_dpm_solver(model, x_T, schedule, levels(4, schedule, "trailing"), clip_x0=True)
    torch.testing.assert_close(states[:4, -1], solved)

    before = load_file(out / "chunk-00001.safetensors")["states"]
    (out / "chunk-00001.safetensors").unlink()  # as a kill during the second chunk leaves it
    with pytest.raises(ValueError, match="unfinished .*1 of 2 chunks missing"):
        load(out)
    record(out, teacher=TEACHER, n=6, steps=2, solver_steps=4, chunk=4, progress=False)
    assert torch.equal(load(out)[0][4:], before)
    with pytest.raises(ValueError, match="holds another recording \\(n, seed differ\\)"):
        record(out, teacher=TEACHER, n=8, steps=2, solver_steps=4, chunk=4, seed=3, progress=False)
    # A larger --n grows it: the whole chunk stays, the short last one is drawn again whole.
    first = load_file(out / "chunk-00000.safetensors")["states"]
    record(out, teacher=TEACHER, n=9, steps=2, solver_steps=4, chunk=4, progress=False)
    grown, manifest = load(out)
    assert manifest["n"] == 9 and grown.shape[0] == 9 and torch.equal(grown[:4], first)
    record(out.with_name("whole"), teacher=TEACHER, n=9, steps=2, solver_steps=4, chunk=4, progress=False)
    assert torch.equal(load(out.with_name("whole"))[0], grown)
    with pytest.raises(ValueError, match="multiple of --student-steps 4"):
        record(tmp_path / "other", teacher=TEACHER, n=6, steps=4, solver_steps=6, progress=False)


def test_a_tiny_trajectory_student_trains_continues_from_a_student_and_samples(idx_folder, tmp_path, capsys):
    rec, data = tmp_path / "rec", ["--data-dir", str(idx_folder)]
    assert main(["trajectories", "--checkpoint", str(TEACHER), "--n", "8", "--student-steps", "2",
                 "--solver-steps", "4", "--out", str(rec)]) == 0
    small = ["--steps", "2", "--batch-size", "4", "--grid-images", "2", "--precision", "fp32", *data]
    two, one = tmp_path / "two", tmp_path / "one"
    assert main(["distill", "--method", "trajectory", "--trajectories", str(rec), "--student-steps", "2",
                 *small, "--out", str(two)]) == 0
    _, _, config = load_checkpoint(two)
    assert config["student"]["trajectories"] == {"path": str(rec.resolve()), "n": 8, "levels": [999, 499, -1]}
    assert config["student"]["teacher"]["path"] == str(TEACHER.resolve())
    # The 1-step student starts from the 2-step one: at step 0 it is that student's network.
    assert main(["distill", "--method", "trajectory", "--trajectories", str(rec), "--student-steps", "1",
                 "--init-from", str(two), *small, "--steps", "1", "--lr", "1e-12", "--out", str(one)]) == 0
    model, _, config = load_checkpoint(one)
    assert config["init_from"]["weights_sha256"] == loading.files.sha256(loading.find(two) / "weights.safetensors")
    assert model.config.distilled_steps == 1 and distilled_method(model) == "trajectory"
    assert main(["sample", "--checkpoint", str(one), "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()

    def refused(*argv: str) -> str:
        assert main(["distill", *small, "--out", str(tmp_path / "r"), *argv]) == 2
        return capsys.readouterr().err.strip()

    assert "record for 4 steps" in refused("--method", "trajectory", "--trajectories", str(rec), "--student-steps", "4")
    assert "pass --trajectories" in refused("--method", "trajectory", "--student-steps", "2")
    assert "only the trajectory method" in refused("--method", "progressive", "--teacher", str(TEACHER),
                                                   "--trajectories", str(rec), "--student-steps", "2")
    assert "were recorded from" in refused("--method", "trajectory", "--trajectories", str(rec), "--teacher",
                                           str(DATA / "tiny-edm-checkpoint"), "--student-steps", "2")
    assert "a student with the same network" in refused("--method", "trajectory", "--trajectories", str(rec),
                                                        "--student-steps", "2", "--init-from", str(TEACHER))
    assert "no recorded trajectories" in refused("--method", "trajectory", "--trajectories", str(tmp_path),
                                                 "--student-steps", "2")
    assert "a share of the batch, from 0 to 1" in refused("--method", "trajectory", "--trajectories", str(rec),
                                                          "--student-steps", "2", "--own-states", "1.5")
    assert "only the trajectory method" in refused("--method", "consistency", "--teacher", str(TEACHER),
                                                   "--own-states", "0.5", "--student-steps", "2")


def test_a_student_refuses_a_recording_whose_teacher_has_changed_since(tmp_path, idx_folder):
    import shutil

    from mnistdiff.distill import distill

    teacher, rec = tmp_path / "teacher", tmp_path / "rec"
    shutil.copytree(TEACHER, teacher)
    record(rec, teacher=teacher, n=2, steps=1, solver_steps=2, progress=False)
    shutil.rmtree(teacher)
    shutil.copytree(DATA / "tiny-edm-checkpoint", teacher)  # other weights at the same path
    with pytest.raises(loading.CheckpointError, match="other weights than when .* was recorded"):
        distill(tmp_path / "student", method="trajectory", trajectories=rec, student_steps=1, steps=1,
                data_dir=idx_folder, progress=False)
