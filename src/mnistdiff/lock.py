"""One writer per folder: an exclusive OS lock on FOLDER/.lock, which holds the writer's PID.

The lock is flock(2) on an open file: the OS drops it when the process ends however it ends
(SIGKILL and power cuts included), so a stale lock is never left behind; a release removes the
file, a kill leaves it unlocked. A second writer is refused at once and changes nothing.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

NAME = ".lock"

_held: dict[Path, int] = {}  # folder (resolved) -> the open lock file's descriptor, in this process


class Busy(ValueError):
    """Another process writes the folder."""


def take(folder: str | Path) -> None:
    """Lock an existing `folder` for this process until `release` (or the process's end); a
    no-op if this process holds it already. Raises Busy, naming the holder's PID, if another does."""
    key = Path(folder).resolve()
    if key in _held:
        return
    while True:
        try:
            fd = os.open(key / NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:  # a read-only folder, a full disk
            raise ValueError(f"{folder}: cannot write its lock file {NAME} ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise Busy(f"{folder} is being written by {who} (a train or export running now): "
                       "wait for it to end, or pass another --out") from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, key / NAME):
            break
        os.close(fd)  # locked a file its holder removed on release: lock the one there now
    line = f"{os.getpid():<20}\n".encode()  # one write of a fixed width: never half an old PID and half ours
    os.pwrite(fd, line, 0)
    os.ftruncate(fd, len(line))
    _held[key] = fd


def _holder(fd: int) -> str:
    """The PID in the lock file; its holder writes it just after locking, so wait a moment for it."""
    for _ in range(50):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.002)
    return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def release(folder: str | Path) -> None:
    """Give the lock up; a no-op where this process does not hold it."""
    key = Path(folder).resolve()
    fd = _held.pop(key, None)
    if fd is not None:
        (key / NAME).unlink(missing_ok=True)  # while still locked: whoever opened it will see it gone
        os.close(fd)  # closing the last descriptor of the file drops the flock


@contextmanager
def hold(folder: str | Path):
    """`take` for the block; a lock this process held already stays with its owner after the block."""
    if Path(folder).resolve() in _held:
        yield
        return
    take(folder)
    try:
        yield
    finally:
        release(folder)
