"""One writer per result document: a lock held for a run's whole life.

A run takes the lock on its document before it first reads or writes it
(a new run right after reserving its file, ``--resume`` before reading the
document it finishes) and keeps it until the run has ended, so no two
processes ever rewrite one document: a second writer, ``--resume`` included,
is refused with one line naming the holder's pid.

The lock is ``flock`` on a file beside the document, ``<document>.lock``,
which holds the holder's pid. The kernel lets go of a lock when its holder
dies, even by SIGKILL, so a lock file a dead run left behind holds nothing:
the next writer takes it over. The holder removes the file when it lets go.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from dlbench.errors import InputError

SUFFIX = ".lock"


def lock_path(document: Path | str) -> Path:
    document = Path(document)
    return document.with_name(document.name + SUFFIX)


class DocumentLock:
    """The exclusive right to write one result document (a context manager)."""

    def __init__(self, document: Path | str, field: str | None = None):
        self.document, self.path, self.field = Path(document), lock_path(document), field
        self._fd: int | None = None

    def acquire(self) -> "DocumentLock":
        """Take the lock, or raise an InputError naming the process that holds it."""
        while self._fd is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise InputError(f"is being written by another dlbench run (pid {holder}); a document has one "
                                 "writer at a time: wait for that run to end, or stop it",
                                 field=self.field, source=str(self.document)) from None
            except OSError as exc:  # a file system without locks
                os.close(fd)
                raise InputError(f"cannot lock the result document ({self.path.name}): {exc.strerror}",
                                 field=self.field, source=str(self.document)) from None
            if _still_named(fd, self.path):
                self._fd = fd
            else:  # its last holder removed the file meanwhile: lock the one the name stands for now
                os.close(fd)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        return self

    def release(self) -> None:
        """Let go (the lock file is removed first, while still held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a lock file that stays behind holds nothing once closed
        os.close(self._fd)
        self._fd = None

    def _open(self) -> int:
        try:
            os.stat(self.document)  # no lock file beside a document that is not there (a mistyped name)
        except OSError as exc:
            raise InputError(f"cannot read result file: {exc.strerror}", source=str(self.document)) from None
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise InputError(f"cannot lock the result document ({self.path.name}): {exc.strerror}",
                             field=self.field, source=str(self.document)) from None

    def __enter__(self) -> "DocumentLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int, patience: float = 0.5) -> str:
    """The pid the lock file names; a holder that has just taken the lock
    writes it a moment later ('unknown' if it has not after ``patience`` seconds)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            text = ""
        if text.isdigit() or time.monotonic() > deadline:
            return text if text.isdigit() else "unknown"
        time.sleep(0.01)


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)
