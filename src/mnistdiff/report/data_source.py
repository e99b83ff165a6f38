"""Where the report reads MNIST from: the whole data set if it can be found or downloaded, else, for
counts it covers, the subset shipped in the package (data/mnist-subset)."""

from __future__ import annotations

import sys
from pathlib import Path

from mnistdiff.data.idx import DataFileError
from mnistdiff.data.locate import SUBSET, SUBSET_SIZES, find_split
from mnistdiff.evaluation.report import FLOOR_DRAWS
from mnistdiff.report.settings import FID_ROWS, Settings


def images_needed(settings: Settings) -> dict[str, int]:
    """Real images each split must hold: the floor's disjoint training draws at the largest FID count,
    and test images for precision and recall at that count (the figures and merges need fewer)."""
    largest = max(settings.images_of(row.label) for row in FID_ROWS)
    return {"train": FLOOR_DRAWS * largest, "test": max(largest, settings.reconstruction_images)}


def data_dir_for(settings: Settings, dataset: str, data_dir: str | Path | None = None) -> str | None:
    """`data_dir` where it (or $MNISTDIFF_DATA, the cache, a download) gives both MNIST splits; else the
    shipped subset when the settings' counts fit in it, saying so in one line; else the error, with how
    to get the whole set."""
    try:
        for split in ("test", "train"):
            find_split(dataset, split, data_dir)
        return None if data_dir is None else str(data_dir)
    except DataFileError as err:
        need = images_needed(settings)
        if dataset != "mnist" or any(need[split] > SUBSET_SIZES[split] for split in need):
            raise DataFileError(f"{err} (the --{settings.name} report needs the whole {dataset} set: "
                                "pass --data-dir DIR or set MNISTDIFF_DATA=DIR to a folder holding its IDX files)") from err
        print(f"mnistdiff: no MNIST files ({err}); the --{settings.name} report uses the first "
              f"{SUBSET_SIZES['test']:,} test and {SUBSET_SIZES['train']:,} training digits shipped with the package "
              "(--full and training need the whole set: --data-dir DIR or MNISTDIFF_DATA=DIR)", file=sys.stderr, flush=True)
        return str(SUBSET)
