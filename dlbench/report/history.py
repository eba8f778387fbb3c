"""A metric over stored runs: the history of one machine's results folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlbench.errors import InputError
from dlbench.results.document import read_document
from dlbench.results.store import StoredRun, machine_id, stored_runs


def latest(root: Path) -> Path:
    runs = stored_runs(root)
    if not runs:
        raise InputError("no stored run documents (run `dlbench run` first)", field="--latest", source=str(root))
    return runs[-1].path


@dataclass(frozen=True)
class Point:
    """One value of the history: a metric of one row of one stored run."""

    run: StoredRun
    document: dict
    row: dict
    value: float | None

    @property
    def machine(self) -> str:
        return machine_id(self.document.get("environment") or {})


def load(root: Path, machine: str | None = None) -> tuple[list[tuple[StoredRun, dict]], list[str]]:
    """(stored runs with their documents, oldest first; one warning per file that could not be read)."""
    found, warnings = [], []
    for run in stored_runs(root):
        try:
            document = read_document(run.path)
        except InputError as exc:
            warnings.append(str(exc))
            continue
        if machine is None or machine_id(document.get("environment") or {}) == machine:
            found.append((run, document))
    return found, warnings


def points(runs: list[tuple[StoredRun, dict]], metric: str, scenarios=(), backends=()) -> list[Point]:
    """The metric of every row (outside sweeps) that matches the filters, in run order."""
    found = []
    for run, document in runs:
        for row in document.get("results") or []:
            if row.get("sweep_point") or (scenarios and row.get("scenario") not in scenarios) \
                    or (backends and row.get("backend") not in backends):
                continue
            value = (row.get("metrics") or {}).get(metric)
            found.append(Point(run, document, row, value if isinstance(value, (int, float)) else None))
    return found


def check_filters(runs: list[tuple[StoredRun, dict]], metric: str, scenarios, backends) -> None:
    """One clear error when a filter or the metric matches nothing stored."""
    rows = [r for _, d in runs for r in d.get("results") or []]
    for option, wanted, seen in (("--scenario", scenarios, {r.get("scenario") for r in rows}),
                                 ("--backend", backends, {r.get("backend") for r in rows})):
        unknown = [w for w in wanted if w not in seen]
        if unknown:
            raise InputError(f"no stored run has {unknown[0]!r}; expected one of "
                             + ", ".join(sorted(map(str, seen))), field=option)
    metrics = {k for r in rows for k, v in (r.get("metrics") or {}).items() if isinstance(v, (int, float))}
    if rows and metric not in metrics:
        raise InputError(f"no stored run has metric {metric!r}; expected one of " + ", ".join(sorted(metrics)),
                         field="--metric")


def by_scenario(items: list[Point]) -> dict[str, tuple[list[str], list[tuple[Point, dict]]]]:
    """Per scenario: (backends, [(a point of the run, {backend: value})]), runs in order."""
    grouped: dict[str, tuple[list[str], dict]] = {}
    for p in items:
        backends, by_run = grouped.setdefault(str(p.row.get("scenario")), ([], {}))
        backend = str(p.row.get("backend"))
        if backend not in backends:
            backends.append(backend)
        by_run.setdefault(p.run.path, (p, {}))[1][backend] = p.value
    return {s: (backends, list(by_run.values())) for s, (backends, by_run) in grouped.items()}


def _value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"


def _run_cells(p: Point) -> list[str]:
    env = p.document.get("environment") or {}
    created = str(p.document.get("created") or p.run.stamp or "-")
    return [str(p.run.number or "-"), created.replace("T", " ").rstrip("Z")[:16],
            str(env.get("git_commit") or "-"), p.machine]


def rich_tables(items: list[Point], metric: str):
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    tables = []
    for scenario, (backends, runs) in by_scenario(items).items():
        table = Table(title=f"{scenario}: {metric}", title_justify="left")
        for name in ("#", "created", "commit", "machine"):
            table.add_column(name)
        for backend in backends:
            table.add_column(backend, justify="right")
        for point, values in runs:
            table.add_row(*map(escape, _run_cells(point) + [_value(values.get(b)) for b in backends]))
        tables.append(table)
    return Group(*tables)


def records(items: list[Point], metric: str) -> list[dict]:
    """One tidy record per stored run x scenario x backend."""
    return [{"path": str(p.run.path), "number": p.run.number or None, "created": p.document.get("created"),
             "commit": (p.document.get("environment") or {}).get("git_commit"), "machine": p.machine,
             "scenario": p.row.get("scenario"), "backend": p.row.get("backend"), "status": p.row.get("status"),
             "metric": metric, "value": p.value} for p in items]


def as_csv(items: list[Point], metric: str) -> str:
    from dlbench.report.escape import csv_text

    rows = records(items, metric)
    return csv_text(rows, list(rows[0]) if rows else ["path"])


def as_json(items: list[Point], metric: str) -> str:
    import json

    return json.dumps(records(items, metric), indent=1) + "\n"
