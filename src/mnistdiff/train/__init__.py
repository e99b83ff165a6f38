"""Training a noise predictor, with checkpoints that survive a kill."""

from mnistdiff.train.loop import Interrupted, train

__all__ = ["Interrupted", "train"]
