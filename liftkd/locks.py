"""Locks and atomic writes, so that two processes never write the same thing at once and an
interrupted write never leaves half a file.

``replacing(path)`` gives a temporary file to write, renamed onto ``path`` at the end;
``locked(path)`` holds a file's lock for a short section (a result that two jobs of ``make -j2``
may both ask for); ``claim(folder)`` and ``exclusive(folder)`` hold a run's folder for a whole
process or section, so that a second run of the same job or training stops at once with
:class:`FolderBusyError` instead of racing the first for its checkpoints.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write inside the block, renamed onto ``path`` when the
    block ends without error and removed otherwise: a reader sees the old file or the new one,
    never half of one. The name holds the process id, so two processes that write the same file
    at once never share a temporary file (the last rename wins, whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s ``.lock`` file (one process at a time inside)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


LOCK_FILE = ".in_use.lock"
_HELD: dict[Path, Any] = {}  # folders this process holds, with their open lock files
# (the system frees them when the process ends; closing them first keeps exit quiet)
atexit.register(lambda: [f.close() for f in _HELD.values() if f is not None])


class FolderBusyError(RuntimeError):
    """Another process is writing the folder (a second run of the same job or training)."""


def _acquire(folder: Path, what: str):
    folder.mkdir(parents=True, exist_ok=True)
    try:
        f = open(folder / LOCK_FILE, "a+")
    except PermissionError:  # a read-only folder: nothing can be written there to race over
        return None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise FolderBusyError(
            f"{folder} ({what}) is in use by {holder}: the same job or training runs there "
            "already (make -j with the same RUN_NAME, or a second make); wait for it to end, or "
            "stop it, then run again (it resumes)"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {platform.node()}")
    f.flush()
    return f


def _other_rank() -> bool:
    # under accelerate / torchrun every process of one run has a RANK; the first one holds it
    return int(os.environ.get("RANK", "0") or 0) > 0


def claim(folder: str | Path, what: str) -> None:
    """Hold ``folder`` for the rest of this process (the system frees it when the process ends,
    however it ends): a second process that claims it gets :class:`FolderBusyError` at once."""
    folder = Path(folder).resolve()
    if folder not in _HELD and not _other_rank():
        _HELD[folder] = _acquire(folder, what)


@contextmanager
def exclusive(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder`` while inside (nothing to do if this process holds it already)."""
    folder = Path(folder).resolve()
    if folder in _HELD or _other_rank():
        yield
        return
    _HELD[folder] = _acquire(folder, what)
    try:
        yield
    finally:
        held = _HELD.pop(folder)
        if held is not None:
            held.close()  # closing the file releases its lock
