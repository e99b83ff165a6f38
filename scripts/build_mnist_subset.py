"""Write the MNIST subset shipped in the package: the first digits of each split, with their labels.

    python scripts/build_mnist_subset.py DIR   # DIR: a folder with the four MNIST IDX files

Writes src/mnistdiff/data/mnist-subset/*.gz (SUBSET_SIZES in data/locate.py: how many of each split)
under MNIST's own file names, gzipped without a timestamp, so the same input gives the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mnistdiff.data.idx import read_split, write_idx
from mnistdiff.data.locate import FILES, SUBSET, SUBSET_SIZES, split_paths


def build(source: Path, out: Path = SUBSET) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split, n in SUBSET_SIZES.items():
        paths = split_paths(source, split)
        if paths is None:
            sys.exit(f"{source} holds no MNIST {split} files ({', '.join(FILES[split])})")
        images, labels = read_split(*paths)
        for name, array in zip(FILES[split], (images[:n], labels[:n])):
            write_idx(out / name, array)
            print(f"{out / name}: {len(array)} of {len(images)}, {(out / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build(Path(sys.argv[1]))
