"""Every ```python block of README.md and docs/ runs as shown, so a documented call that breaks fails here.

Each block runs in a fresh Python process, in a folder that holds what the docs name: `DIR`, a data
folder (tiny MNIST-shaped IDX files, also $MNISTDIFF_DATA), and `runs/a`, a run's exported model. To be
quick, the blocks see small stand-ins for the big things: load_checkpoint() without a path gives the
tiny test checkpoint instead of the shipped model, and train() trains the `tiny` preset for two steps.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_idx_folder

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "data" / "tiny-old-checkpoint"

PRELUDE = f"""
import mnistdiff.loading, mnistdiff.training

_load, _train = mnistdiff.loading.load_checkpoint, mnistdiff.training.train

def load_checkpoint(path=None, **kwargs):
    return _load({str(TINY)!r} if path is None else path, **kwargs)

def train(out, **kwargs):
    kwargs.update(preset="tiny", steps=2, batch_size=4, grid_images=4, grid_steps=2, progress=False,
                  minutes=None, fid_every=0)
    return _train(out, **kwargs)

mnistdiff.loading.load_checkpoint, mnistdiff.training.train = load_checkpoint, train
"""


def python_blocks() -> list:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    blocks = []
    for page in pages:
        text = page.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            blocks.append(pytest.param(match.group(1), id=f"{page.relative_to(ROOT)}:{line}"))
    return blocks


def test_the_docs_have_python_blocks():
    assert len(python_blocks()) >= 2  # the README's and docs/api.md's, at least


@pytest.mark.parametrize("code", python_blocks())
def test_a_documented_python_block_runs(code, tmp_path):
    data = make_idx_folder(tmp_path / "DIR")
    shutil.copytree(TINY, tmp_path / "runs" / "a")
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "MNISTDIFF_DATA": str(data), "OMP_NUM_THREADS": "1"}
    script = tmp_path / "block.py"
    script.write_text(PRELUDE + "\n" + code)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
