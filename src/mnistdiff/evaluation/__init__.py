"""Evaluation offline: a digit classifier's features, FID, precision/recall, class shares, and
how often a conditional model's samples read as the digit they were drawn for."""

from mnistdiff.evaluation.classifier import Classifier, load_classifier
from mnistdiff.evaluation.metrics import fid, frechet_distance, gaussian_stats, precision_recall
from mnistdiff.evaluation.reference import load_reference
from mnistdiff.evaluation.report import evaluate

__all__ = ["Classifier", "evaluate", "fid", "frechet_distance", "gaussian_stats", "load_classifier",
           "load_reference", "precision_recall"]
