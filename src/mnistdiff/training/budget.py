"""The --minutes time budget of a training run, and how it shows on the step bar."""

from __future__ import annotations

import math

from mnistdiff.training import distributed
from mnistdiff.training.lr import decay_done


class Budget:
    """The --minutes time budget: wall time from the start, compiling counted, FID checks not."""

    def __init__(self, run, minutes: float | None):
        self.minutes = minutes
        self.start = run.clock() - run.setup_s  # the time budget includes compiling
        self.deadline = self.start + 60 * minutes if minutes else float("inf")
        # The share of the lr decay done where a resumed run stood, so that its lr stays continuous.
        self.begun = decay_done(run.train_config, run.state["step"])

    def spent(self, run, signalled: bool) -> float:
        """The share of the budget spent (0 without one); inf once a signal came, to stop at once."""
        # Every process stops at the same step and runs at the same lr: agree on the flag and the clock
        # (the FID checks' pause is process 0's, whose checks the others wait for).
        signalled, elapsed, paused = distributed.largest(
            run.group, [float(signalled), run.clock() - self.start, run.paused_s])
        if signalled:
            return math.inf
        return (elapsed - paused) / (60 * self.minutes) if self.minutes else 0.0

    def decay_share(self, spent: float) -> float | None:
        """The share of the lr decay done after `spent` of the budget; None without a budget."""
        return self.begun + (1 - self.begun) * spent if self.minutes else None


def steps_in_budget(step: int, steps: int, seconds_left: float, steps_per_s: float) -> int:
    """The step a run will stop at: `steps`, or earlier where the time budget runs out first at
    `steps_per_s`; the training bar's total, so that its ETA honours --minutes."""
    if seconds_left == float("inf") or not steps_per_s > 0:
        return steps
    return min(steps, step + max(0, math.floor(seconds_left * steps_per_s)))


def time_left(seconds_left: float) -> dict:
    """With --minutes, the time budget left beside the step bar's ETA."""
    if seconds_left == float("inf"):
        return {}
    minutes, seconds = divmod(max(0, int(seconds_left)), 60)
    return {"time_left": f"{minutes}:{seconds:02d}"}
