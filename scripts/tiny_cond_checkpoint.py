"""Write tests/data/tiny-cond-checkpoint: the tiny preset trained as a class-conditional model for a
few steps on the MNIST subset shipped with the package (labels 0..9), then exported.

    python scripts/tiny_cond_checkpoint.py [OUT]

Tests of conditional sampling, merging and the explorer load it as a real conditional checkpoint;
40 steps teach it no digits, but its label embedding has moved from zero, so labels change its eps.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from mnistdiff.cli import main

ROOT = Path(__file__).resolve().parent.parent


def make(out: str) -> None:
    """Paths relative to the repository's root, so that the record names no machine's folders."""
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        run = os.path.relpath(Path(tmp) / "run")
        train = ["train", "--preset", "tiny", "--conditional", "--steps", "40", "--sample-every", "1000",
                 "--data-dir", "src/mnistdiff/data/mnist-subset", "--out", run]
        if main(train) != 0:
            raise SystemExit("training failed")
        if main(["export", "--checkpoint", run, "--out", out]) != 0:
            raise SystemExit("export failed")
    record_file = Path(out) / "record.json"  # not checksummed: its run folder, relative as the commands name it
    record = json.loads(record_file.read_text()) | {"run": run}
    record_file.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    make(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tiny-cond-checkpoint")
