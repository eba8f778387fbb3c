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
import stat
from pathlib import Path

from dlbench.errors import InputError
from dlbench.results.files import atomic_write
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
    """Write ``document`` to ``path`` atomically (see :func:`dlbench.results.files.atomic_write`).
    Only for a new document or the run's own, whose lock the caller holds
    (:mod:`dlbench.results.lock`); any other file goes through :func:`dlbench.results.files.write_file`."""
    atomic_write(path, dumps(document) + "\n")


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(document: dict) -> str:
    return json.dumps(document, indent=1, allow_nan=False, default=_json_default)


def read_document(path: Path | str) -> dict:
    """The document stored in ``path``, checked field by field (see
    :func:`dlbench.results.schema.checked_document`) before anything uses it."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError("not a result document: not a regular file", source=str(path))
        document = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read result file: {exc.strerror}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not a JSON result document: not UTF-8 text (byte {exc.start})", source=str(path)) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        why = exc if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise InputError(f"not a JSON result document: {why}", source=str(path)) from None
    return checked_document(document, str(path))
