"""Scores of a class-conditional model's samples: evaluate()'s, and how often the classifier reads
each image as the digit it was asked for."""

from __future__ import annotations

import torch

from mnistdiff.evaluation.classifier import load_classifier
from mnistdiff.evaluation.metrics import features_and_probs
from mnistdiff.evaluation.report import evaluate


def guided_scores(images: torch.Tensor, requested: torch.Tensor | None, dataset: str = "mnist", data_dir=None,
                  seed: int = 0, floors: list[float] | None = None) -> dict:
    """evaluate()'s scores without the class shares, and with `requested` ((N,) int64, the label each
    image was drawn for) "accuracy", the share the shipped classifier reads as the requested digit,
    and "accuracy_by_digit", that share among the images of each label 0..max(requested).

    images: uint8 (N, 1, 28, 28). floors: real_floors(N, ...) where the caller has them.
    """
    result = {k: v for k, v in evaluate(images, dataset, data_dir, seed=seed, floors=floors).items()
              if k != "class_shares"}
    if requested is not None:
        if requested.shape != (len(images),):
            raise ValueError(f"{tuple(requested.shape)} requested labels for {len(images)} images")
        classifier, _ = load_classifier(dataset)
        read = features_and_probs(classifier, images)[1].argmax(1)
        hit = (read == requested).double()
        result["accuracy"] = hit.mean().item()
        result["accuracy_by_digit"] = [hit[requested == c].mean().item() for c in range(int(requested.max()) + 1)]
    return result
