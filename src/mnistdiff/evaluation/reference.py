"""Feature statistics of the real training and test sets, shipped with the package."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mnistdiff import data, files
from mnistdiff.evaluation.classifier import asset, load_classifier
from mnistdiff.evaluation.metrics import features_and_probs, gaussian_stats

SPLITS = ("train", "test")


def compute_reference(out_dir: str | Path, dataset: str = "mnist", data_dir=None, command: str | None = None) -> dict:
    """Write stats-<dataset>.safetensors (mu and sigma of each split) and a .json recording its sha256."""
    classifier, _ = load_classifier(dataset)
    tensors, counts = {}, {}
    for split in SPLITS:
        images, _ = data.load(dataset, split, data_dir)
        mu, sigma = gaussian_stats(features_and_probs(classifier, images)[0])
        tensors |= {f"{split}.mu": mu, f"{split}.sigma": sigma}
        counts[split] = len(images)
    out_dir = Path(out_dir)
    path = out_dir / f"stats-{dataset}.safetensors"
    save_file(tensors, path)
    record = {"dataset": dataset, "images": counts, "sha256": files.sha256(path), "command": command,
              "classifier_sha256": files.sha256(asset(f"classifier-{dataset}.safetensors"))}
    (out_dir / f"stats-{dataset}.json").write_text(json.dumps(record, indent=2) + "\n")
    files.record_checksums(out_dir, [path.name, f"stats-{dataset}.json"])
    return record


def load_reference(dataset: str = "mnist") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (mu, sigma)} from the shipped file, after checking it against its recorded sha256."""
    path = asset(f"stats-{dataset}.safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"no shipped reference statistics for {dataset!r}: run mnistdiff reference-stats")
    files.verify_checksums(path.parent, [path.name, f"stats-{dataset}.json"])
    record = json.loads(asset(f"stats-{dataset}.json").read_text())
    if files.sha256(path) != record["sha256"]:
        raise ValueError(f"{path} does not match its recorded sha256: reinstall or recompute it")
    tensors = load_file(path)
    return {split: (tensors[f"{split}.mu"], tensors[f"{split}.sigma"]) for split in SPLITS}
