"""Writing a file without losing another: atomically, and never over a result document or an input.

Every file dlbench writes goes through :func:`atomic_write` (a temporary file
in the same folder, then ``os.replace``), so a reader, or a run killed
halfway, never leaves half a file. A file that is not a new result document
(a report, its pictures) goes through :func:`write_file`, which first refuses
a target that is a result document or one of the command's inputs. Inputs are
told by the file itself (device and inode), not by its path: a hard link, a
symbolic link or another spelling of the input's path is the input.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from dlbench.errors import InputError

#: a file larger than this is not read to tell whether it is a result document
LARGEST_CHECKED = 64 * 2**20


def write_file(path: Path | str, data: str | bytes, *, inputs=(), field: str | None = "--out") -> Path:
    """Write ``data`` to ``path`` atomically, unless ``path`` is a result
    document or the same file as one of ``inputs``: then an InputError."""
    path = Path(path)
    check_replaceable(path, inputs, field)
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise InputError(f"cannot write the file: {exc.strerror or exc}", field=field, source=str(path)) from None
    return path


def check_replaceable(path: Path, inputs=(), field: str | None = "--out") -> None:
    """An InputError when writing ``path`` would replace something that must stay."""
    try:
        target = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"cannot look at the file: {exc.strerror}", field=field, source=str(path)) from None
    if not stat.S_ISREG(target.st_mode):
        raise InputError("is not a regular file; give the name of a file to write", field=field, source=str(path))
    for given in inputs:
        if same_file(target, given):
            raise InputError(f"would overwrite an input document ({given}); choose another file name",
                             field=field, source=str(path))
    if is_result_document(path, target.st_size):
        raise InputError("is a dlbench result document; dlbench never replaces one: choose another file name",
                         field=field, source=str(path))


def same_file(found: os.stat_result, other: Path | str) -> bool:
    """Whether ``other`` is the file ``found`` describes (any link or spelling of it)."""
    try:
        theirs = os.stat(other)
    except OSError:
        return False
    return (found.st_dev, found.st_ino) == (theirs.st_dev, theirs.st_ino)


def is_result_document(path: Path, size: int) -> bool:
    """A JSON object with a list of results, as every result document is (a
    file too large to read is taken for one when it starts like a JSON object)."""
    try:
        with open(path, "rb") as f:
            head = f.read(LARGEST_CHECKED + 1)
    except OSError:
        return False
    if size > LARGEST_CHECKED or len(head) > LARGEST_CHECKED:
        return head.lstrip()[:1] == b"{"
    try:
        parsed = json.loads(head)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("results"), list)


def atomic_write(path: Path | str, data: str | bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file.
    The file gets the permissions a plain ``open`` would give (0o666 less the
    umask), not the temporary file's owner-only 0o600: results are shared."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would change it
    for every thread for a moment); 0o022 where /proc does not tell."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
