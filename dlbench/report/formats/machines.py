"""A report's runs split by the machine their rows ran on (a suite fanned out
over a cluster): every format gives each machine its own tables, environment
and speed ratios."""

from __future__ import annotations

from dlbench.report.table import Run
from dlbench.results.store import machine_id


def by_machine(runs: list[Run]) -> list[tuple[str | None, list[Run]]]:
    """The runs split by the machine their rows ran on, where a document holds
    rows from more than one (a suite fanned out over a cluster): each machine
    gets its own tables, environment and speed ratios, since throughputs of
    two machines do not belong in one table. ``[(None, runs)]`` otherwise:
    a single-machine report is the one it always was."""
    split = [(run, _rows_by_machine(run.document)) for run in runs]
    if all(len(rows) <= 1 for _, rows in split):
        return [(None, runs)]
    grouped: dict[str, list[Run]] = {}
    for run, machines in split:
        for machine, rows in machines.items():
            env = _machine_environment(run.document, machine, rows)
            label = run.label if len(runs) > 1 else str(env.get("hostname") or machine)
            grouped.setdefault(machine, []).append(Run(label, {**run.document, "environment": env, "results": rows}))
    return list(grouped.items())


def _rows_by_machine(document: dict) -> dict[str, list[dict]]:
    """The document's rows by machine id. Only a document that recorded other
    machines (``machines``, written as their rows came in) has rows from more
    than one; a row that does not say ran on the document's machine."""
    home = machine_id(document.get("environment") or {})
    if not document.get("machines"):
        return {home: document.get("results") or []}
    grouped: dict[str, list[dict]] = {}
    for row in document.get("results") or []:
        grouped.setdefault((row.get("machine") or {}).get("id") or home, []).append(row)
    return grouped


def _machine_environment(document: dict, machine: str, rows: list[dict]) -> dict:
    """The environment of one of the document's machines (its own, or one its jobs recorded)."""
    own = document.get("environment") or {}
    if machine == machine_id(own):
        return own
    hostname = next(((r.get("machine") or {}).get("hostname") for r in rows), None)
    return (document.get("machines") or {}).get(machine) or {"hostname": hostname}


def machine_heading(machine: str, runs: list[Run]) -> str:
    return f"Machine {runs[0].environment.get('hostname') or '?'} ({machine})"


def with_machine(records: list[dict], machine: str | None) -> list[dict]:
    """Records of a report grouped by machine carry it, after their host (or run)."""
    if machine is None:
        return records
    out = []
    for record in records:
        items = list(record.items())
        at = next((i + 1 for i, (k, _) in enumerate(items) if k == "host"), 1)
        out.append(dict([*items[:at], ("machine", machine), *items[at:]]))
    return out
