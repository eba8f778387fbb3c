"""The result document's schema: its version, the upgrades of older versions, the check on read.

Each format change ships as one function that takes a document of version
``n`` and returns it in version ``n + 1``; :func:`upgrade` applies them in
order, so a reader only ever sees the current schema (as asv does with its
results files). A new schema version adds one entry to ``UPGRADES``.

Versions:

* 0 (pre-release): no ``schema_version`` key; the throughput metric was
  called ``samples_per_second``.
* 1: ``schema_version: 1``; ``samples_per_sec`` (median over repeats) with
  ``samples_per_sec_stats`` and ``samples_per_sec_samples``.
"""

from __future__ import annotations

from typing import Callable

from dlbench.errors import InputError

SCHEMA_VERSION = 1


def schema_version(document: dict) -> int:
    """The document's schema version; a document without one is version 0."""
    return int(document.get("schema_version", 0))


def _rename_metric(document: dict, old: str, new: str) -> None:
    for row in document.get("results", []):
        metrics = row.get("metrics") or {}
        if old in metrics and new not in metrics:
            metrics[new] = metrics.pop(old)


def upgrade_0_to_1(document: dict) -> dict:
    _rename_metric(document, "samples_per_second", "samples_per_sec")
    _rename_metric(document, "samples_per_second_stats", "samples_per_sec_stats")
    _rename_metric(document, "samples_per_second_samples", "samples_per_sec_samples")
    document["schema_version"] = 1
    return document


UPGRADES: dict[int, Callable[[dict], dict]] = {0: upgrade_0_to_1}


def upgrade(document: dict) -> dict:
    """``document`` in the current schema (it is changed in place and returned)."""
    version = schema_version(document)
    while version < SCHEMA_VERSION:
        document = UPGRADES[version](document)
        version = schema_version(document)
    return document


def checked_document(document, source: str) -> dict:
    """A parsed document in the current schema; older schemas are upgraded
    (the functions above), newer ones and non-documents are refused."""
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise InputError("not a dlbench result document (no list of results)", source=source)
    try:
        version = schema_version(document)
    except (TypeError, ValueError):
        raise InputError(f"schema_version {document['schema_version']!r} is not a number", source=source) from None
    if version > SCHEMA_VERSION:
        raise InputError(f"schema_version {version} is newer than this dlbench "
                         f"understands ({SCHEMA_VERSION}); upgrade dlbench", source=source)
    document = upgrade(document)
    for key in ("environment", "settings"):
        if not isinstance(document.get(key, {}), dict):
            raise InputError(f"{key}: expected an object, got {type(document[key]).__name__}", source=source)
    for i, row in enumerate(document["results"]):
        check_row(row, f"results[{i}]", source)
    return document


STATUSES = ("ok", "failed", "unavailable", "timeout", "diverged", "interrupted")
ROW_FIELDS = {"scenario": str, "backend": str, "status": str}


def check_row(row, where: str, source: str) -> dict:
    """A result row with the fields every reader relies on; an InputError
    naming the row and the field otherwise (checked once, on read, so report,
    compare, history and resume never meet a half row)."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected an object, got {type(row).__name__}", source=source)
    for key, kind in ROW_FIELDS.items():
        if key not in row:
            raise InputError(f"{where}.{key}: missing; every row has {', '.join(ROW_FIELDS)}", source=source)
        if not isinstance(row[key], kind):
            raise InputError(f"{where}.{key}: expected a string, got {row[key]!r}", source=source)
    if row["status"] not in STATUSES:
        raise InputError(f"{where}.status: unknown {row['status']!r}; expected one of {', '.join(STATUSES)}",
                         source=source)
    if not isinstance(row.get("metrics", {}), dict):
        raise InputError(f"{where}.metrics: expected an object, got {type(row['metrics']).__name__}",
                         source=source)
    return row
