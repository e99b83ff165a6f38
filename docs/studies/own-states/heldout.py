"""How well a trajectory student follows recorded trajectories it learnt from and ones it never saw.

    python docs/studies/own-states/heldout.py --students runs/trajectory-4,runs/own-4 \
        --learnt runs/trajectories --heldout runs/trajectories-heldout --n 2048 --out results/heldout.md

For each student and each recording (the first --n trajectories): the trajectory loss of each of its
steps from the recorded state (as TrajectoryLoss weighs it), and the end-to-end error, the mean squared
pixel difference between the image its own N DDIM steps draw from the recorded noise (as it samples:
trailing grid, clip_x0) and the recorded image. fp32.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mnistdiff import load_checkpoint
from mnistdiff.distill.levels import x0_loss
from mnistdiff.distill.progressive import two_step_target
from mnistdiff.distill.trajectories import load
from mnistdiff.distill.trajectory import positions
from mnistdiff.provenance import git_commit
from mnistdiff.samplers import sample_ddim


@torch.no_grad()
def follow(model, schedule, states: torch.Tensor, levels: list[int], batch: int = 256) -> tuple[list[float], float]:
    """(loss of each step from recorded states, end-to-end mean squared error) over `states`."""
    steps = model.config.distilled_steps
    at = positions(steps, levels, schedule)
    grid = [levels[i] for i in at]
    losses, e2e = torch.zeros(steps, dtype=torch.float64), 0.0
    for s in states.split(batch):
        for k in range(steps):
            z, landing = s[:, at[k]], s[:, at[k + 1]]
            t, t2 = torch.full((len(s),), grid[k]), torch.full((len(s),), grid[k + 1])
            target = two_step_target(z, landing, t, t2, schedule)
            losses[k] += x0_loss(model, z, t, target, schedule).item() * len(s)  # the batch's mean, summed
        drawn = sample_ddim(model, s[:, at[0]], schedule, grid, clip_x0=True)
        e2e += (drawn - s[:, -1]).pow(2).flatten(1).mean(1).sum().item()
    return (losses / len(states)).tolist(), e2e / len(states)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", required=True, help="comma-separated run or exported folders")
    p.add_argument("--learnt", required=True, help="the recording the students learnt")
    p.add_argument("--heldout", required=True, help="a recording of the same teacher from other noises")
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.manual_seed(0)
    recordings = {name: load(folder) for name, folder in (("learnt", args.learnt), ("held out", args.heldout))}
    commit = (git_commit() or "unknown")[:7]
    lines = [f"# Following recorded trajectories ({args.n} of each recording, fp32, at {commit})", "",
             "| student | trajectories | loss of each step, from the recorded state | end to end, MSE |",
             "|---|---|---|---|"]
    for student in args.students.split(","):
        model, schedule, _ = load_checkpoint(student)
        for name, (states, manifest) in recordings.items():
            losses, e2e = follow(model, schedule, states[: args.n], manifest["levels"])
            lines.append(f"| {student} | {name} | {', '.join(f'{v:.5f}' for v in losses)} | {e2e:.5f} |")
            print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
