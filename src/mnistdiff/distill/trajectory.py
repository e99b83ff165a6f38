"""Trajectory distillation: a student's N DDIM steps land on the teacher's recorded ODE trajectories.

Luhman & Luhman 2021 distil a teacher's whole sampler into one step by regression on (noise, image)
pairs drawn once. Here each of a student's N steps on the trailing grid regresses onto a recorded
trajectory (distill/trajectories.py): from the state z at level t, the target is the x0 whose one DDIM
step lands on the recorded state at the student's next level t'' (progressive.two_step_target; the
recorded image itself when t'' is clean data), weighed as progressive distillation weighs it.

Progressive distillation learns from a teacher of 2N DDIM steps, and each round from the last round's
student, so the errors of coarse teacher steps and of every round add up. Here the targets come from
the teacher's accurate solver (DPM-Solver++(2M) in 20 steps, as good as DDIM in 50), in one round for
any N whose grid the recording holds; the price is a finite set of trajectories, drawn once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.distill.levels import x0_loss
from mnistdiff.distill.progressive import two_step_target
from mnistdiff.distill.trajectories import SPACING
from mnistdiff.samplers.levels import levels as grid_levels


def positions(steps: int, recorded: list[int], schedule: Schedule) -> list[int]:
    """Where the levels of a `steps`-step student's trailing grid lie among the recorded levels, or
    ValueError in one line if the recording lacks one."""
    grid = grid_levels(steps, schedule, SPACING)
    missing = [t for t in grid if t not in recorded]
    if missing:
        raise ValueError(f"the recording keeps levels {recorded}; a {steps}-step student needs {grid}: "
                         f"record for {steps} steps, or a multiple of them")
    return [recorded.index(t) for t in grid]


@dataclass(frozen=True, eq=False)
class TrajectoryLoss:
    """For each image of the batch, a recorded trajectory and one of the student's steps t -> t'',
    drawn uniformly; the student's x0 prediction at (state at t, t) is pulled to the x0 whose DDIM step
    lands on the state at t''. `states` (n, levels, C, H, W) at `levels` (the recording's).

    Called as the training losses are: loss(model, schedule, x0, generator, shard, labels); the data
    batch x0 only sets the batch size and device. Unconditional: labels must be None.
    """

    states: torch.Tensor
    levels: list[int]
    steps: int

    def __call__(self, model, schedule: Schedule, x0: torch.Tensor, generator: torch.Generator | None = None,
                 shard: tuple[int, int] = (0, 1), labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("distillation takes an unconditional teacher: no labels")
        rank, world_size = shard
        b = x0.shape[0]
        where = generator.device if generator is not None else torch.device("cpu")
        # Drawn for the global batch and sliced, as the training losses draw their noise (diffusion.draw_noise).
        rows = torch.randint(len(self.states), (b * world_size,), generator=generator, device=where)
        step = torch.randint(self.steps, (b * world_size,), generator=generator, device=where)
        rows, step = rows[rank * b : (rank + 1) * b].cpu(), step[rank * b : (rank + 1) * b].cpu()
        at = torch.tensor(positions(self.steps, self.levels, schedule))
        grid = torch.tensor([self.levels[i] for i in at.tolist()])
        z = self.states[rows, at[step]].to(x0.device, x0.dtype)
        landing = self.states[rows, at[step + 1]].to(x0.device, x0.dtype)
        t, t2 = grid[step].to(x0.device), grid[step + 1].to(x0.device)
        return x0_loss(model, z, t, two_step_target(z, landing, t, t2, schedule), schedule)
