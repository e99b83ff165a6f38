"""Few-step students of a trained model: progressive, consistency and trajectory distillation,
trained by the training loop (training/loop.py) with a loss that holds the frozen teacher or its
recorded trajectories."""

from mnistdiff.distill.consistency import ConsistencyLoss
from mnistdiff.distill.progressive import ProgressiveLoss
from mnistdiff.distill.student import METHODS, distill, progressive_rounds, student_loss
from mnistdiff.distill.trajectory import TrajectoryLoss

__all__ = ["METHODS", "ConsistencyLoss", "ProgressiveLoss", "TrajectoryLoss", "distill", "progressive_rounds",
           "student_loss"]
