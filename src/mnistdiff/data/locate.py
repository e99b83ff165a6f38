"""Finding the data set on disk, or downloading MNIST into a per-user cache."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from mnistdiff.data.idx import DataFileError
from mnistdiff.files import atomic_write

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# md5 of the original gzip files, as published; checked on what we download, before each use.
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

# Where Debian's dataset-fashion-mnist package puts its files.
SYSTEM_DIRS = {"fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")]}

DATASETS = tuple(MD5)

# The first digits of each MNIST split, shipped in the package (mnist-subset/README.md says whence and
# under which licence); scripts/build_mnist_subset.py writes them. Enough for the quick report, whose
# real-data floor scores 5 disjoint draws of 256 training images.
SUBSET = Path(__file__).parent / "mnist-subset"
SUBSET_SIZES = {"train": 1280, "test": 1000}


def cache_dir(dataset: str) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "mnistdiff" / dataset


def split_paths(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of a split in `folder`, gzip or raw, or None."""
    found = []
    for name in FILES[split]:
        for candidate in (folder / name, folder / name.removesuffix(".gz")):
            if candidate.is_file():
                found.append(candidate)
                break
    return (found[0], found[1]) if len(found) == 2 else None


def _in_folder(folder: Path, dataset: str, split: str) -> tuple[Path, Path] | None:
    """Accept the files directly in `folder` or in a subfolder named after the data set."""
    return split_paths(folder, split) or split_paths(folder / dataset, split)


def find_split(dataset: str, split: str, data_dir: str | Path | None = None, download: bool = True) -> tuple[Path, Path]:
    """Paths of one split: --data-dir, else $MNISTDIFF_DATA, else system folders, else the cache (downloading)."""
    if dataset not in MD5:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    explicit = data_dir or os.environ.get("MNISTDIFF_DATA")
    if explicit:
        paths = _in_folder(Path(explicit), dataset, split)
        if paths is None:
            source = "--data-dir" if data_dir else "MNISTDIFF_DATA"
            raise DataFileError(f"{source}={explicit} holds no {dataset} {split} files ({', '.join(FILES[split])})")
        return paths
    for folder in SYSTEM_DIRS.get(dataset, []):
        paths = split_paths(folder, split)
        if paths:
            return paths
    folder = cache_dir(dataset)
    # What we downloaded is checked against the published checksums each time it is used.
    cached = [folder / name for name in FILES[split]]
    if all(p.is_file() and _md5(p) == MD5[dataset][p.name] for p in cached):
        return cached[0], cached[1]
    if not download:
        raise DataFileError(f"{dataset} not found: pass --data-dir or set MNISTDIFF_DATA to its folder")
    for name in FILES[split]:
        if not (folder / name).is_file() or _md5(folder / name) != MD5[dataset][name]:
            fetch(name, folder, MIRRORS[dataset], MD5[dataset][name])
    return cached[0], cached[1]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fetch(name: str, folder: Path, mirrors: list[str], md5: str, timeout: float = 30.0) -> Path:
    """Download `name` from the first mirror that serves it with the right md5; write atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    errors = []
    for mirror in mirrors:
        try:
            with urllib.request.urlopen(mirror + name, timeout=timeout) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError) as err:
            errors.append(f"{mirror}: {err}")
            continue
        digest = hashlib.md5(payload).hexdigest()
        if digest != md5:
            errors.append(f"{mirror}: md5 {digest}, expected {md5}")
            continue
        atomic_write(target, payload)  # only once its checksum is right
        return target
    raise DataFileError(
        f"could not download {name} ({'; '.join(errors)}); offline? "
        "pass --data-dir or set MNISTDIFF_DATA to a folder holding the IDX files"
    )
