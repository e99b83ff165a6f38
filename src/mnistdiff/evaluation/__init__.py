"""Evaluation offline: a digit classifier's features, FID, precision/recall, class shares."""

from mnistdiff.evaluation.classifier import Classifier, load_classifier
from mnistdiff.evaluation.guided import guided_scores
from mnistdiff.evaluation.metrics import fid, frechet_distance, gaussian_stats, precision_recall
from mnistdiff.evaluation.reference import load_reference
from mnistdiff.evaluation.report import evaluate

__all__ = ["Classifier", "evaluate", "fid", "frechet_distance", "gaussian_stats", "guided_scores",
           "load_classifier", "load_reference", "precision_recall"]
