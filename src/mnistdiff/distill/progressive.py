"""Progressive distillation (Salimans & Ho 2022): one student DDIM step does what two teacher steps do.

The student takes `steps` DDIM steps on the trailing grid (samplers.levels, spacing "trailing": T - 1,
T - 1 - T/steps, ..., then clean data), whose every other level is the teacher's grid of 2 steps:
level i of the student's grid is level 2i of the teacher's, so one student step t -> t'' spans the
teacher's t -> t' -> t''. Each round halves the steps, its student the next round's teacher.

The student predicts v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho, Sec. 4; VPrediction in
model/preconditioning.py): with few steps the first step starts from pure noise, where
x0 = (xt - sqrt(1 - ab) eps) / sqrt(ab) divides the error of eps by sqrt(ab) = 0.006 at t = T - 1; an
eps-predicting student cannot make its one step well, while x0 = sqrt(ab) xt - sqrt(1 - ab) v is
well-posed at every level. Started from an eps teacher's weights, the network's output is already
close to v at low noise (v ~ eps where ab ~ 1) and learns it at high noise. A teacher with EDM
preconditioning already predicts x0 well at every level: its student keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mnistdiff.diffusion import Schedule, q_sample
from mnistdiff.distill.levels import abar, ddim_steps, draw_on_grid, lookup, x0_loss
from mnistdiff.samplers.levels import STUDENT_SPACING
from mnistdiff.samplers.levels import levels as grid_levels


def check_steps(steps: int, T: int) -> None:
    """Refuse student steps that are not a power of two whose double the T levels hold."""
    if steps < 1 or steps & (steps - 1) or 2 * steps > T:
        raise ValueError(f"progressive distillation halves the steps: --student-steps must be a power of two "
                         f"from 1 to {T // 2} (T = {T}), got {steps}")


def two_step_target(z: torch.Tensor, x2: torch.Tensor, t: torch.Tensor, t2: torch.Tensor,
                    schedule: Schedule) -> torch.Tensor:
    """The x0 whose one DDIM step takes z at level t to x2 at level t2 (t2 = -1: clean data): the target
    x~ of Algorithm 2 of Salimans & Ho 2022, (x2 - (s2 / s) z) / (a2 - (s2 / s) a), a = sqrt(ab), s = sqrt(1 - ab)."""
    ab, ab2 = abar(schedule, t, z), abar(schedule, t2, z)
    ratio = ((1 - ab2) / (1 - ab)).sqrt()
    return (x2 - ratio * z) / (ab2.sqrt() - ratio * ab.sqrt())


@dataclass(frozen=True, eq=False)
class ProgressiveLoss:
    """Algorithm 2 of Salimans & Ho 2022 for a student of `steps` steps of `teacher` (an eps model,
    frozen): for x0 and a level t of the student's grid, the teacher's two DDIM steps from
    z = q_sample(x0, t, eps) give x2 at t''; the student's x0 prediction at (z, t) is pulled to the
    x~ that makes its one step land there, with the truncated SNR weight max(SNR(t), 1) (Sec. 4).

    Called as the training losses are: loss(model, schedule, x0, generator, shard, labels); `model`
    is the student, wrapped to give eps. Unconditional: labels must be None.
    """

    teacher: nn.Module
    steps: int

    def grids(self, schedule: Schedule) -> tuple[dict[int, int], dict[int, int]]:
        """For each level t the student steps from: (t', the teacher's level between, t'', the next)."""
        student = grid_levels(self.steps, schedule, STUDENT_SPACING)
        teacher = grid_levels(2 * self.steps, schedule, STUDENT_SPACING)
        assert teacher[::2] == student  # the grids nest (the trailing grid, steps a power of two)
        return ({t: teacher[2 * i + 1] for i, t in enumerate(student[:-1])},
                {t: student[i + 1] for i, t in enumerate(student[:-1])})

    def target(self, z: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """x~ for noisy images z at levels t: the teacher's two steps, then two_step_target."""
        middle, end = self.grids(schedule)
        t1, t2 = lookup(middle, t, schedule.T), lookup(end, t, schedule.T)
        with torch.no_grad():
            x1 = ddim_steps(z, self.teacher(z, t).to(z.dtype), t, t1, schedule)
            x2 = ddim_steps(x1, self.teacher(x1, t1).to(z.dtype), t1, t2, schedule)
            return two_step_target(z, x2, t, t2, schedule)

    def __call__(self, model, schedule: Schedule, x0: torch.Tensor, generator: torch.Generator | None = None,
                 shard: tuple[int, int] = (0, 1), labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("distillation takes an unconditional teacher: no labels")
        t, eps = draw_on_grid(schedule, x0, list(self.grids(schedule)[0]), generator, shard)
        z = q_sample(schedule, x0, t, eps)
        target = self.target(z, t, schedule)
        return x0_loss(model, z, t, target, schedule)
