"""Training the feature classifier: AdamW, one-cycle learning rate, small random shifts."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from mnistdiff import data, files
from mnistdiff.data.locate import find_split
from mnistdiff.evaluation.classifier import Classifier
from mnistdiff.provenance import git_commit


def random_shift(x: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `pixels` in each direction, filling with background (-1)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, b), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None].expand(b, h, w)
    cols = (dx[:, None] + torch.arange(w))[:, None, :].expand(b, h, w)
    return padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(data.to_model_range(images[i : i + batch_size]))
        correct += (logits.argmax(1) == labels[i : i + batch_size]).sum().item()
    return correct / len(images)


def data_checksum(dataset: str, data_dir) -> dict[str, str]:
    """sha256 of the IDX files the classifier was trained and tested on."""
    paths = [p for split in ("train", "test") for p in find_split(dataset, split, data_dir)]
    return {p.name: files.sha256(p) for p in paths}


def train_classifier(out_dir: str | Path, dataset: str = "mnist", data_dir=None, epochs: int = 4,
                     batch_size: int = 128, lr: float = 3e-3, seed: int = 0, progress: bool = True,
                     command: str | None = None) -> dict:
    """Train, test, and write classifier-<dataset>.safetensors and .json into out_dir; returns the record."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = data.load(dataset, "train", data_dir)
    test_images, test_labels = data.load(dataset, "test", data_dir)
    model = Classifier()
    steps = epochs * (len(images) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    bar = tqdm(total=steps, desc=f"classifier ({dataset})", disable=not progress, dynamic_ncols=True)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(images), generator=gen)
        for i in range(len(images) // batch_size):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            x = random_shift(data.to_model_range(images[idx]), 2, gen)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    record = {
        "dataset": dataset,
        "test_accuracy": accuracy(model, test_images, test_labels),
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
        "command": command,
        "commit": git_commit(),
        "data_sha256": data_checksum(dataset, data_dir),
        "torch": torch.__version__,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out_dir / f"classifier-{dataset}.safetensors")
    (out_dir / f"classifier-{dataset}.json").write_text(json.dumps(record, indent=2) + "\n")
    files.record_checksums(out_dir, [f"classifier-{dataset}.safetensors", f"classifier-{dataset}.json"])
    return record
