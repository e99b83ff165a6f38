"""Finished parts of a report, kept in its folder under a key of the model's checksum and the settings,
so that an interrupted or repeated run computes only what it lacks."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable

from mnistdiff import files


def model_checksum(checkpoint_folder: Path) -> str:
    """The SHA-256 of the checkpoint's weights.safetensors (a diffusers folder's UNet weights): the same
    weights give the same numbers."""
    weights = checkpoint_folder / "weights.safetensors"
    if not weights.is_file():
        from mnistdiff.external.diffusers import weights_file

        weights = weights_file(checkpoint_folder)
    return files.sha256(weights)


def _digest(entry: dict) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()


class Cache:
    """One JSON file per finished part in OUT/cache/: its part, key, result, seconds, the SHA-256 of
    each file the result lists in "files" (written beside index.html), and the SHA-256 of all that.

    An entry is reused only while it proves itself: whole JSON, its own checksum right, made for
    this part, and every file it names there with the checksum it recorded. A damaged, foreign or
    edited entry (or file) is recomputed with a one-line warning naming it; an entry made for other
    settings or another model is recomputed silently.
    """

    def __init__(self, out: Path, base_key: dict, force: bool = False):
        self.folder = out / "cache"
        self.base_key = base_key
        self.force = force
        self.times: dict[str, dict] = {}  # part -> {"seconds": time to compute it, "reused": from the cache}

    def _path(self, name: str) -> Path:
        return self.folder / (name.replace(",", "").replace(" ", "-").replace("+", "p") + ".json")

    def key(self, name: str, settings: dict) -> str:
        text = json.dumps({"part": name, **self.base_key, **settings}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, name: str, settings: dict) -> dict | None:
        """The entry's record (result and seconds), or None where it must be computed."""
        path = self._path(name)
        if self.force or not path.is_file():
            return None
        problem, record = self._check(path, name)
        if problem is not None:
            print(f"warning: {path}: {problem}: computing the part again", file=sys.stderr, flush=True)
            return None
        return record if record["key"] == self.key(name, settings) else None

    def _check(self, path: Path, name: str) -> tuple[str | None, dict]:
        """(what is wrong with the entry at `path`, or None; the entry)."""
        try:
            entry = json.loads(path.read_bytes().decode())
        except (OSError, ValueError) as err:
            return f"not a readable cache entry ({type(err).__name__}: {str(err)[:80]})", {}
        fields = {"part": str, "key": str, "result": dict, "seconds": (int, float), "files": dict, "sha256": str}
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in fields.items()):
            return "not a cache entry of this version (fields missing or of the wrong type)", {}
        if _digest({k: v for k, v in entry.items() if k != "sha256"}) != entry["sha256"]:
            return "its SHA-256 differs from the one it records (damaged or edited)", {}
        if entry["part"] != name:
            return f"an entry of part {entry['part']!r}, not {name!r}", {}
        if sorted(entry["files"]) != sorted(entry["result"].get("files", [])):
            return "its files differ from the ones its result lists", {}
        for file, digest in entry["files"].items():
            where = self.folder.parent / file
            if not where.is_file():
                return f"{where} is missing", {}
            if files.sha256(where) != digest:
                return f"{where} differs from the one it records (damaged or changed)", {}
        return None, entry

    def put(self, name: str, settings: dict, result: dict, seconds: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {"part": name, "key": self.key(name, settings), "result": result, "seconds": seconds,
                 "files": {f: files.sha256(self.folder.parent / f) for f in result.get("files", [])}}
        entry = json.loads(json.dumps(entry))  # as it reads back (int keys become strings), for the checksum
        entry["sha256"] = _digest(entry)
        files.atomic_write(self._path(name), (json.dumps(entry, indent=1) + "\n").encode())

    def run(self, name: str, settings: dict, compute: Callable[[], dict]) -> tuple[dict, bool]:
        """(result, whether it came from the cache); `times[name]` gets its seconds."""
        cached = self.get(name, settings)
        if cached is not None:
            self.times[name] = {"seconds": cached["seconds"], "reused": True}
            return cached["result"], True
        start = time.perf_counter()
        result = compute()
        seconds = time.perf_counter() - start
        self.put(name, settings, result, seconds)
        self.times[name] = {"seconds": seconds, "reused": False}
        return result, False
