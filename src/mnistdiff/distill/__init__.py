"""Few-step students of a trained model: progressive distillation and consistency distillation,
trained by the training loop (training/loop.py) with a loss that holds the frozen teacher."""

from mnistdiff.distill.consistency import ConsistencyLoss
from mnistdiff.distill.progressive import ProgressiveLoss
from mnistdiff.distill.student import METHODS, distill, progressive_rounds, student_loss

__all__ = ["METHODS", "ConsistencyLoss", "ProgressiveLoss", "distill", "progressive_rounds", "student_loss"]
