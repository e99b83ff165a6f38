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

Learnt on recorded states alone, each step meets at sampling time the states that the student's own
earlier steps reach, which are off the recording by their errors, and the errors add up over the
steps. With `own_states` p, a share p of the images start their step instead from the state the
student's EMA (the model that ships) reaches in its own DDIM steps from the recorded noise, and are
pulled to the same recorded landing: the student learns to steer its own states back onto the teacher's
trajectory, which is what its chain of steps has to do (scheduled sampling, Bengio et al. 2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnistdiff.diffusion import Schedule
from mnistdiff.distill.levels import x0_loss
from mnistdiff.distill.progressive import two_step_target
from mnistdiff.samplers.common import alpha_bar
from mnistdiff.samplers.ddim import ddim_update
from mnistdiff.samplers.levels import STUDENT_SPACING
from mnistdiff.samplers.levels import levels as grid_levels


def positions(steps: int, recorded: list[int], schedule: Schedule) -> list[int]:
    """Where the levels of a `steps`-step student's trailing grid lie among the recorded levels, or
    ValueError in one line if the recording lacks one."""
    grid = grid_levels(steps, schedule, STUDENT_SPACING)
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

    With `own_states` p > 0, each image's state is with probability p the one `ema` (an eps model, in
    eval mode) reaches from the recorded noise in its own DDIM steps (clip_x0, as students sample).

    Called as the training losses are: loss(model, schedule, x0, generator, shard, labels); the data
    batch x0 only sets the batch size and device. Unconditional: labels must be None.
    """

    states: torch.Tensor
    levels: list[int]
    steps: int
    own_states: float = 0.0
    ema: torch.nn.Module | None = None

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
        # Drawn only when asked for, so that a run without own states draws as runs did before them.
        own = torch.rand(b * world_size, generator=generator, device=where) < self.own_states \
            if self.own_states > 0 else torch.zeros(b * world_size, dtype=torch.bool, device=where)
        rows, step, own = (v[rank * b : (rank + 1) * b].cpu() for v in (rows, step, own))
        at = torch.tensor(positions(self.steps, self.levels, schedule))
        grid = [self.levels[i] for i in at.tolist()]
        z = self.states[rows, at[step]].to(x0.device, x0.dtype)
        landing = self.states[rows, at[step + 1]].to(x0.device, x0.dtype)
        own &= step > 0  # the first step starts from the recorded noise either way
        if own.any():
            z[own.to(z.device)] = self._roll_out(self.states[rows[own], at[0]].to(z), step[own].to(z.device), grid,
                                                 schedule)
        level_of, step = torch.tensor(grid, device=x0.device), step.to(x0.device)
        t, t2 = level_of[step], level_of[step + 1]
        return x0_loss(model, z, t, two_step_target(z, landing, t, t2, schedule), schedule)

    @torch.no_grad()
    def _roll_out(self, x: torch.Tensor, stop: torch.Tensor, grid: list[int], schedule: Schedule) -> torch.Tensor:
        """The states the EMA reaches from noise x at grid[0] in stop[i] DDIM steps, image by image."""
        for k in range(int(stop.max())):
            going = stop > k
            t = torch.full((int(going.sum()),), grid[k], device=x.device)
            eps = self.ema(x[going], t).to(x.dtype)
            x[going] = ddim_update(x[going], eps, alpha_bar(schedule, grid[k]), alpha_bar(schedule, grid[k + 1]),
                                   clip_x0=True)
        return x
