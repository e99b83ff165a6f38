"""Training a noise predictor, with checkpoints that survive a kill."""

from mnistdiff.training.loop import Interrupted, NonFiniteLoss, train

__all__ = ["Interrupted", "NonFiniteLoss", "train"]
