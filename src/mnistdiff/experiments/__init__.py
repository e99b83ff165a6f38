"""Experiments on a trained model: DDIM inversion, latent mixing, figures."""

from mnistdiff.experiments.merge import merge
from mnistdiff.experiments.mixing import RULES, linear, linear_norm, slerp

__all__ = ["RULES", "linear", "linear_norm", "merge", "slerp"]
