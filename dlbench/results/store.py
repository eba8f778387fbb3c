"""Where run documents live: ``<root>/<machine-id>/NNNN_<commit>_<timestamp>.json``.

As pytest-benchmark's file storage does, runs are grouped by machine (numbers
measured on different machines do not belong on one line) and numbered in the
order they were stored. The machine id is a readable, file-name-safe slug of
the host name plus a short hash of host name, CPU model and core count, so it
stays the same from run to run and differs between machines that share a
host name.

Older run files (``results/runs/run-<timestamp>.json``: any JSON file with a
timestamp in its name) are found too; runs are ordered by the time in their
file name (the document's ``created``), then by number.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dlbench.errors import InputError
from dlbench.results.document import now_iso, safe_name

STORED_NAME = re.compile(r"^(?P<number>\d{4})_(?P<commit>.+)_(?P<stamp>\d{8}T\d{6}Z)\.json$")
STAMP = re.compile(r"\d{8}T\d{6}Z")


def machine_id(environment: dict) -> str:
    """``<host>-<8 hex digits>``, e.g. ``vm-1f3a9c2e``."""
    host = str(environment.get("hostname") or "unknown")
    key = f"{host}|{environment.get('cpu')}|{environment.get('logical_cores')}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{safe_name(host.lower())[:24]}-{digest}"


def stamp(created: str) -> str:
    """``2026-11-28T16:00:00Z`` -> ``20261128T160000Z``."""
    return created.replace("-", "").replace(":", "")


def next_number(folder: Path) -> int:
    numbers = [int(m["number"]) for p in folder.glob("*.json") if (m := STORED_NAME.match(p.name))]
    return max(numbers, default=0) + 1


def store_path(root: Path, document: dict) -> Path:
    """A new, reserved file for ``document`` under ``root`` (the machine folder
    is created). Runs started together into one folder each get their own
    number: the number is chosen under a lock on the folder and the file is
    created exclusively, so no run ever replaces another's document. The file
    is empty until the document is first written; readers skip it until then."""
    env = document.get("environment") or {}
    folder = Path(root) / machine_id(env)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create results folder: {exc.strerror}", field="--out", source=str(folder)) from None
    commit = safe_name(env.get("git_commit") or "nocommit").replace("_", "-")
    created = safe_name(stamp(document.get("created") or now_iso()))
    with _locked(folder):
        number = next_number(folder)
        while True:
            path = folder / f"{number:04d}_{commit}_{created}.json"
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                return path
            except FileExistsError:
                number += 1
            except OSError as exc:
                raise InputError(f"cannot create a result file: {exc.strerror}", field="--out",
                                 source=str(folder)) from None


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on ``folder`` itself (no lock file is left behind)
    for the time it takes to pick a number."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise InputError(f"cannot write in the results folder: {exc.strerror}", field="--out",
                         source=str(folder)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass(frozen=True)
class StoredRun:
    path: Path
    stamp: str  # the document's creation time, from the file name
    number: int  # 0 for files outside the numbered layout


def _stored(path: Path) -> StoredRun | None:
    m = STORED_NAME.match(path.name)
    if m:
        return StoredRun(path, m["stamp"], int(m["number"]))
    found = STAMP.search(path.name)
    return StoredRun(path, found.group(0), 0) if found else None


def stored_runs(root: Path) -> list[StoredRun]:
    """Every run document under ``root`` (one folder deep) with a time in its name, oldest first."""
    root = Path(root)
    # an empty file is a name reserved by a run that has not written its document yet
    files = [p for pattern in ("*.json", "*/*.json") for p in root.glob(pattern)
             if p.is_file() and p.stat().st_size > 0]
    runs = [run for p in files if (run := _stored(p)) is not None]
    return sorted(runs, key=lambda r: (r.stamp, r.number, str(r.path)))
