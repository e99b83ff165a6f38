"""Finished parts of a report, kept in its folder under a key of the model's checksum and the settings,
so that an interrupted or repeated run computes only what it lacks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable


def model_checksum(checkpoint_folder: Path) -> str:
    """The SHA-256 of the checkpoint's weights.safetensors: the same weights give the same numbers."""
    from mnistdiff.files import sha256

    return sha256(checkpoint_folder / "weights.safetensors")


class Cache:
    """One JSON file per finished part in OUT/cache/, holding its key and its result.

    A part's result lists in "files" what it wrote beside index.html; the part counts as finished
    only while those files are there.
    """

    def __init__(self, out: Path, base_key: dict, force: bool = False):
        self.folder = out / "cache"
        self.base_key = base_key
        self.force = force

    def _path(self, name: str) -> Path:
        return self.folder / (name.replace(",", "").replace(" ", "-").replace("+", "p") + ".json")

    def key(self, name: str, settings: dict) -> str:
        text = json.dumps({"part": name, **self.base_key, **settings}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, name: str, settings: dict) -> dict | None:
        path = self._path(name)
        if self.force or not path.is_file():
            return None
        record = json.loads(path.read_text())
        if record.get("key") != self.key(name, settings):
            return None
        result = record["result"]
        if not all((self.folder.parent / f).is_file() for f in result.get("files", [])):
            return None
        return result

    def put(self, name: str, settings: dict, result: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key(name, settings), "result": result}, indent=1) + "\n")
        os.replace(tmp, path)

    def run(self, name: str, settings: dict, compute: Callable[[], dict]) -> tuple[dict, bool]:
        """(result, whether it came from the cache)."""
        cached = self.get(name, settings)
        if cached is not None:
            return cached, True
        result = compute()
        self.put(name, settings, result)
        return result, False
