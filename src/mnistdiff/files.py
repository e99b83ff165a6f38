"""Files on disk: atomic writes that follow the umask and reach the disk, checksums, CSV, output checks."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHECKSUMS = "checksums.json"


class NoSpace(OSError):
    """The disk filled up during a write; nothing half-written was left behind."""

    def __str__(self) -> str:
        return self.strerror  # one line, without OSError's "[Errno 28]"


def umask_mode(directory: bool = False) -> int:
    """The mode open() or mkdir() would give a new file or folder under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def _no_space(err: OSError, path: Path) -> OSError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(err.errno, f"no space left on device while writing {path}")
    return err


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` survive a power cut (where the OS allows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: Path, payload: bytes) -> None:
    """Write a new file in full, with the umask's mode, synced to disk; ENOSPC becomes NoSpace."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise _no_space(err, path) from err


@contextmanager
def atomic_file(path: str | Path):
    """Yields a binary file object; on success it replaces `path` whole, else nothing changes."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as err:
        raise _no_space(err, path) from err
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())  # mkstemp makes 0600 whatever the umask
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _no_space(err, path) from err
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, payload: bytes) -> None:
    with atomic_file(path) as f:
        f.write(payload)


@contextmanager
def atomic_folder(final: Path):
    """Yields an empty temporary folder beside `final`; on success it becomes `final`, else it is removed."""
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
    try:
        os.chmod(tmp, umask_mode(directory=True))  # mkdtemp makes 0700 whatever the umask
        yield tmp
        fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and not isinstance(err, NoSpace):
            raise _no_space(err, final) from err
        raise
    fsync_dir(final.parent)


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_csv(path: str | Path, missing_ok: bool = False) -> tuple[list[str], list[dict[str, str]]]:
    """(field names, rows as dicts of strings) of a CSV file with a header row; with `missing_ok`,
    empty for a file that is not there."""
    path = Path(path)
    if missing_ok and not path.is_file():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def record_checksums(folder: Path, names: list[str]) -> None:
    """Add (or update) the SHA-256 of `names` in the folder's checksums.json."""
    path = folder / CHECKSUMS
    sums = json.loads(path.read_text()) if path.is_file() else {}
    sums |= {name: sha256(folder / name) for name in names}
    atomic_write(path, (json.dumps(dict(sorted(sums.items())), indent=2) + "\n").encode())


class ChecksumError(ValueError):
    """A file that differs from the checksum recorded beside it."""


def verify_checksums(folder: Path, names: list[str] | None = None) -> None:
    """Check files against the folder's checksums.json (all it lists, or `names`); no such file: no check."""
    path = folder / CHECKSUMS
    if not path.is_file():
        return
    try:
        sums = json.loads(path.read_bytes().decode())
        assert isinstance(sums, dict)
    except (ValueError, AssertionError) as err:
        raise ChecksumError(f"{path}: not a JSON object of checksums") from err
    for name in names if names is not None else sorted(sums):
        if name not in sums:
            continue
        file = folder / name
        if not file.is_file():
            raise ChecksumError(f"{file}: missing (listed in {CHECKSUMS})")
        if sha256(file) != sums[name]:
            raise ChecksumError(f"{file}: SHA-256 differs from the one recorded in {CHECKSUMS} "
                                "(damaged or changed): reinstall or restore it")


def check_output(path: str | Path, what: str = "output") -> Path:
    """Fail now, before long work, if `path` cannot be written as a file: a folder, no parent, read-only."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder: give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: folder {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.")
    except OSError as err:
        raise ValueError(f"{what} {path}: cannot write in {parent} ({err.strerror})") from err
    os.close(fd)
    os.unlink(probe)
    return path


def check_output_folder(folder: str | Path, what: str = "output folder") -> Path:
    """Create `folder` if needed and check a file can be written in it, before long work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what} {folder}: cannot create it ({err.strerror})") from err
    check_output(folder / "probe", what)
    return folder
