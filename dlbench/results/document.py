"""The versioned result document: build, write atomically, read (and upgrade).

Shape (schema_version 2)::

    {"schema_version": 2, "created": ISO time, "command": [...],
     "environment": {...}, "settings": {...},
     "results": [{"scenario", "backend", "mode", "status", "error", "device", "threads",
                  "backend_version", "machine": {"hostname", "id"}, "metrics": {...}, "parity": {...}}],
     "executor": {...}, "machines": {id: {...}}}  # --executor slurm: how its jobs ran; other hosts rows ran on

Statuses: ok, failed, unavailable, timeout, diverged, interrupted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import tempfile
from pathlib import Path

from dlbench.errors import InputError
from dlbench.results.schema import SCHEMA_VERSION, checked_document



def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_document(environment: dict, settings: dict, command: list[str]) -> dict:
    return {"schema_version": SCHEMA_VERSION, "created": now_iso(), "command": command,
            "environment": environment, "settings": settings, "results": []}


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (no separators, no leading dots)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).lstrip(".") or "run"


def check_writable(out_dir: Path) -> Path:
    """Create ``out_dir`` if needed; a clear error when it cannot be written."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder: {exc.strerror}", field="--out", source=str(out_dir)) from None
    if not os.access(out_dir, os.W_OK):
        raise InputError("output folder is not writable", field="--out", source=str(out_dir))
    return out_dir


def write_document(document: dict, path: Path) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file.
    The file gets the permissions a plain ``open`` would give (0o666 less the
    umask), not the temporary file's owner-only 0o600: results are shared."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1, allow_nan=False, default=_json_default)
            f.write("\n")
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


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(document: dict) -> str:
    return json.dumps(document, indent=1, allow_nan=False, default=_json_default)


def read_document(path: Path | str) -> dict:
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read result file: {exc.strerror}", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not a JSON result document: {exc}", source=str(path)) from None
    return checked_document(document, str(path))
