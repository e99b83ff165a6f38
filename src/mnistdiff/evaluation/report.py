"""The numbers that say how good a set of generated digits is."""

from __future__ import annotations

from functools import lru_cache

import torch

from mnistdiff import data
from mnistdiff.evaluation.classifier import load_classifier
from mnistdiff.evaluation.metrics import features_and_probs, frechet_distance, gaussian_stats, precision_recall
from mnistdiff.evaluation.reference import load_reference

CONFIDENT = 0.9
MIN_IMAGES = 10  # fewer leave FID's covariance and precision/recall's nearest-neighbour radii meaningless
FLOOR_DRAWS = 5  # disjoint draws of real training images that give the floor its spread


def evaluate(images: torch.Tensor, dataset: str = "mnist", data_dir=None, seed: int = 0,
             floors: list[float] | None = None, requested: torch.Tensor | None = None) -> dict:
    """FID against the shipped train and test statistics, the real-data floor at the same count (its
    first draw, and the min, mean and max over FLOOR_DRAWS disjoint draws), precision and recall
    against test images, the share of confident predictions and the class shares. With `requested`
    ((N,) int64, the label each image was drawn for) also "accuracy", the share the classifier reads
    as the requested digit, and "accuracy_by_digit", that share among the images of each label
    0..max(requested) (None for a label no image was drawn for).

    images: uint8 (N, 1, 28, 28). floors: real_floors(N, dataset, data_dir, seed) where the caller has them.
    """
    check_count(len(images))
    if requested is not None and tuple(requested.shape) != (len(images),):
        raise ValueError(f"{tuple(requested.shape)} requested labels for {len(images)} images")
    classifier, reference = _scorer(dataset)
    feats, probs = features_and_probs(classifier, images)
    if requested is not None and len(requested) and (requested.min() < 0 or requested.max() >= probs.shape[1]):
        raise ValueError(f"requested labels must lie in 0..{probs.shape[1] - 1}, the classifier's classes")
    mu, sigma = gaussian_stats(feats)
    n = len(images)
    floors = real_floors(n, dataset, data_dir, seed) if floors is None else floors
    test_images, _ = data.load(dataset, "test", data_dir)
    precision, recall = precision_recall(features_and_probs(classifier, test_images[:n])[0], feats)
    classes = probs.argmax(1)
    result = {
        "n": n,
        "fid_train": frechet_distance(mu, sigma, *reference["train"]),
        "fid_test": frechet_distance(mu, sigma, *reference["test"]),
        "floor_fid_test": floors[0],
        "floor_spread": {"draws": len(floors), "min": min(floors), "mean": sum(floors) / len(floors),
                         "max": max(floors)},
        "precision": precision,
        "recall": recall,
        "confident_share": (probs.max(1).values >= CONFIDENT).double().mean().item(),
        "class_shares": (torch.bincount(classes, minlength=10).double() / n).tolist(),
    }
    if requested is not None:
        hit = (classes == requested).double()
        result["accuracy"] = hit.mean().item()
        result["accuracy_by_digit"] = [hit[requested == c].mean().item() if (requested == c).any() else None
                                       for c in range(int(requested.max()) + 1)]
    return result


def worst_digit(accuracy_by_digit: list[float | None]) -> tuple[int, float]:
    """(label, share) of the label whose images read least often as it, of evaluate's accuracy_by_digit
    (labels no image was drawn for left out)."""
    label = min((c for c, share in enumerate(accuracy_by_digit) if share is not None),
                key=accuracy_by_digit.__getitem__)
    return label, accuracy_by_digit[label]


def check_count(n: int) -> None:
    if n < MIN_IMAGES:
        raise ValueError(f"evaluation needs at least {MIN_IMAGES} images, got {n}")


def real_sample(n: int, dataset: str = "mnist", data_dir=None, seed: int = 0) -> torch.Tensor:
    """n training images drawn without replacement: the real images the floor is scored on."""
    return real_draws(n, dataset, data_dir, seed, draws=1)[0]


def real_draws(n: int, dataset: str = "mnist", data_dir=None, seed: int = 0, draws: int = FLOOR_DRAWS) -> list[torch.Tensor]:
    """`draws` disjoint sets of n training images (as many as the set holds, at least one), the first
    real_sample's own."""
    train_images, _ = data.load(dataset, "train", data_dir)
    order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))
    return [train_images[order[i * n : (i + 1) * n]] for i in range(max(1, min(draws, len(order) // n)))]


def real_floor(n: int, dataset: str = "mnist", data_dir=None, seed: int = 0) -> float:
    """The FID of n real training images against the test statistics: the best a model can score at n."""
    return fid_test(real_sample(n, dataset, data_dir, seed), dataset)


def real_floors(n: int, dataset: str = "mnist", data_dir=None, seed: int = 0, draws: int = FLOOR_DRAWS) -> list[float]:
    """real_floor of `draws` disjoint sets of n real training images, the first real_floor's own: how
    far FID at n moves with the draw alone. A model whose FID lies within their range scores as real
    digits do at this count; one below the first draw is not better than real data, only luckier."""
    return [fid_test(images, dataset) for images in real_draws(n, dataset, data_dir, seed, draws)]


@lru_cache(maxsize=2)
def _scorer(dataset: str):
    """The dataset's shipped classifier and reference statistics, loaded once per process."""
    return load_classifier(dataset)[0], load_reference(dataset)


def fid_test(images: torch.Tensor, dataset: str = "mnist") -> float:
    """FID of uint8 images against the shipped test statistics alone: the cheap check run during training."""
    classifier, reference = _scorer(dataset)
    mu, sigma = reference["test"]
    return frechet_distance(*gaussian_stats(features_and_probs(classifier, images)[0]), mu, sigma)
