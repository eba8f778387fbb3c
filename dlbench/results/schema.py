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
* 2: every row says its ``mode`` (train, inference or both; version 1 rows
  were all "train"), and inference rows carry ``metrics["inference"]`` (one
  entry per batch size: ``batch_size``, ``latency_ms`` {p50, p90, p99, mean},
  ``samples_per_sec``, ``compile_seconds``, ``calls``, ``p99_ci95_ms``,
  ``latency_samples_ms``) and ``metrics["inference_outputs"]`` (the verdict
  on the logits); see :mod:`dlbench.measure.inference`. Rows may say which
  ``machine`` they ran on (``{"hostname", "id"}``, the id as
  :func:`dlbench.results.store.machine_id`); a document with rows from other
  machines than its own (``--executor slurm``) holds their environments in
  ``machines`` (by id), and says how its jobs ran in ``executor``. Documents
  without these keys read as before: all rows from the document's machine.
* 3: a row's ``parity`` has a three-valued ``verdict`` ("agrees",
  "disagrees", "not judged") and its ``reason``; ``agrees`` is None where it
  was not judged. Version 2 verdicts read as their ``agrees``, except a
  certificate with no checkpoint at all (a run shorter than a segment), which
  was printed "no (0/0)" and reads "not judged" (too short).
"""

from __future__ import annotations

from typing import Callable

from dlbench.errors import InputError
from dlbench.results import fields

SCHEMA_VERSION = 3


def schema_version(document: dict) -> int:
    """The document's schema version; a document without one is version 0."""
    return int(document.get("schema_version", 0))


def _rename_metric(document: dict, old: str, new: str) -> None:
    for row in document.get("results", []):
        metrics = row.get("metrics") if isinstance(row, dict) else None
        if isinstance(metrics, dict) and old in metrics and new not in metrics:
            metrics[new] = metrics.pop(old)


def upgrade_0_to_1(document: dict) -> dict:
    _rename_metric(document, "samples_per_second", "samples_per_sec")
    _rename_metric(document, "samples_per_second_stats", "samples_per_sec_stats")
    _rename_metric(document, "samples_per_second_samples", "samples_per_sec_samples")
    document["schema_version"] = 1
    return document


def upgrade_1_to_2(document: dict) -> dict:
    for row in document.get("results", []):
        if isinstance(row, dict):
            row.setdefault("mode", "train")
    document["schema_version"] = 2
    return document


def upgrade_2_to_3(document: dict) -> dict:
    for row in document.get("results", []):
        parity = row.get("parity") if isinstance(row, dict) else None
        if isinstance(parity, dict) and "verdict" not in parity:
            if parity.get("kind") == "certificate" and not parity.get("checkpoints"):
                parity.update(verdict="not judged", agrees=None, reason="too short: no checkpoint")
            else:
                parity["verdict"] = "agrees" if parity.get("agrees") else "disagrees"
    document["schema_version"] = 3
    return document


UPGRADES: dict[int, Callable[[dict], dict]] = {0: upgrade_0_to_1, 1: upgrade_1_to_2, 2: upgrade_2_to_3}


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
    for key in ("environment", "settings", "machines", "executor"):
        if not isinstance(document.get(key, {}), dict):
            raise InputError(f"{key}: expected an object, got {type(document[key]).__name__}", source=source)
    for machine, environment in document.get("machines", {}).items():
        if not isinstance(environment, dict):
            raise InputError(f"machines.{machine}: expected an object, got {type(environment).__name__}",
                             source=source)
    _check_fields(document, fields.DOCUMENT, "", source)
    for i, row in enumerate(document["results"]):
        check_row(row, f"results[{i}]", source)
    return document


def _check_fields(value, declared: fields.Check, where: str, source: str) -> None:
    """Every declared field of ``value`` (see :mod:`dlbench.results.fields`), or one InputError naming the first wrong one."""
    try:
        declared(value, where)
    except fields.Mismatch as wrong:
        raise InputError(str(wrong), source=source) from None


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
    machine = row.get("machine")
    if machine is not None and not (isinstance(machine, dict) and isinstance(machine.get("id"), str)):
        raise InputError(f"{where}.machine: expected an object with the machine's id, got {machine!r}", source=source)
    if row.get("mode", "train") not in MODES:
        raise InputError(f"{where}.mode: unknown {row['mode']!r}; expected one of {', '.join(MODES)}", source=source)
    check_inference(row.get("metrics", {}).get("inference"), f"{where}.metrics.inference", source)
    _check_fields(row, fields.ROW, where, source)
    return row


MODES = ("train", "inference", "both")
LATENCIES = ("p50", "p90", "p99", "mean")


def check_inference(entries, where: str, source: str) -> None:
    """``metrics["inference"]``, when present: a list of entries with a positive
    integer batch size, the latency percentiles as numbers and a call count."""
    if entries is None:
        return
    if not isinstance(entries, list):
        raise InputError(f"{where}: expected a list, got {type(entries).__name__}", source=source)
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"{at}: expected an object, got {type(entry).__name__}", source=source)
        size, calls, latency = entry.get("batch_size"), entry.get("calls"), entry.get("latency_ms")
        if not _count(size):
            raise InputError(f"{at}.batch_size: expected a positive integer, got {size!r}", source=source)
        if not _count(calls):
            raise InputError(f"{at}.calls: expected a positive integer, got {calls!r}", source=source)
        if not isinstance(latency, dict) or not all(_number(latency.get(k)) for k in LATENCIES):
            raise InputError(f"{at}.latency_ms: expected numbers {', '.join(LATENCIES)}, got {latency!r}",
                             source=source)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
