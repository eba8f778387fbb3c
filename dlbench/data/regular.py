"""Opening the user's data files: regular files only, sizes checked before reading.

A path in a scenario is the user's, and it may name anything: a symlink to
``/dev/zero`` (endless bytes: a reader that counts them never finishes), a
FIFO (opening it waits for a writer that never comes), a folder, a socket.
:func:`open_regular` opens without blocking (``O_NONBLOCK``: a FIFO's open
returns at once) and refuses, from the open file's own ``fstat`` (so no
swap between a check and the open can slip through), anything that is not
a regular file; a symlink to a regular file is followed and read.

Every array file's header says how many bytes follow it; the readers
compare that with the file's (or the zip member's) size before reading a
byte of data (:func:`check_npy_size`, and the IDX reader in
:mod:`dlbench.data.files`), so a header claiming terabytes is refused, not
allocated.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

import numpy as np

from dlbench.errors import InputError

KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in KINDS if test(mode)), "not a regular file")


def open_regular(path, what: str) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file (after
    symlinks); otherwise an InputError naming what it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror or exc}", source=str(path)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(f"{what} is {file_kind(mode)}; expected a regular file", source=str(path))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def file_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def npy_header(f: BinaryIO, name: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of the ``.npy`` stream ``f`` is at the start of, ``f`` left at its data."""
    version = np.lib.format.read_magic(f)
    reader = NPY_HEADER_READERS.get(version)
    if reader is None:
        raise ValueError(f"{name} has .npy format version {version}; expected 1.0 or 2.0")
    shape, _, dtype = reader(f)
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects, which only allow_pickle would load (dlbench never does)")
    return shape, dtype


def check_npy_size(f: BinaryIO, size: int, name: str, source: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of the ``.npy`` stream ``f`` of ``size`` bytes, after
    checking that the data its header describes is exactly what follows it."""
    shape, dtype = npy_header(f, name)
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size - f.tell() != expected:
        raise InputError(f"{name} holds {size - f.tell()} bytes of data, its header says {expected}", source=source)
    return shape, dtype
