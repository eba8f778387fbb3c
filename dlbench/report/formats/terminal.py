"""The report for a terminal: rich tables, status coloured, narrowed to the terminal's width (the least telling
columns dropped first, and named under the tables); the environment and problems around them."""

from __future__ import annotations

from dlbench.report import inference
from dlbench.report.formats.machines import by_machine, machine_heading
from dlbench.report.table import (Column, Entry, Run, by_scenario, entries, environment_table, legend, outcomes,
                                  problems, runs_of, table)

#: dropped first, in this order, when a terminal is too narrow for every column
NARROW_DROPS = ("worst checkpoint", "wall s", "device MiB", "peak MiB", "GFLOP/s", "% peak", "time to acc s",
                "final loss", "vs fastest", "compile s", "comm ms/step", "per replica/s", "agrees")
#: inference columns dropped first, in this order, when a terminal is too narrow for every column
INFERENCE_DROPS = ("calls", "p90 ms", "mean ms", "vs fastest", "rel diff", "compile s", "status")


def fitting(columns: list[Column], cells: list[list[str]], width: int) -> tuple[list[Column], list[list[str]]]:
    """The columns (and cells) that fit ``width`` characters, the least telling dropped first."""
    def needed(keep):
        return sum(max([len(columns[i].name)] + [len(row[i]) for row in cells]) + 3 for i in keep)

    keep = list(range(len(columns)))
    for name in NARROW_DROPS:
        if needed(keep) <= width:
            break
        keep = [i for i in keep if columns[i].name != name]
    return [columns[i] for i in keep], [[row[i] for i in keep] for row in cells]


def rich_tables(runs: list[Run], width: int | None = None):
    """One rich table per scenario, status coloured, narrowed to the terminal's
    ``width``; under a heading per machine in a report grouped by machine."""
    from rich.console import Group

    groups = by_machine(runs)
    if groups[0][0] is None:
        return _rich_tables(runs, width)
    return Group(*(part for machine, group in groups for part in (_rich_heading(machine, group),
                                                                  _rich_tables(group, width))))


def rich_table(document: dict):
    """The tables of one document (printed by ``dlbench run``)."""
    return rich_tables(runs_of([document]))


def rich_report(runs: list[Run], width: int | None = None):
    """Environment, tables and problems, for ``dlbench report`` on a terminal
    (tables narrowed to ``width`` columns, default: the terminal's)."""
    from rich.console import Group
    from rich.text import Text

    groups = by_machine(runs)
    if groups[0][0] is None:
        body = [_rich_environment(runs), _rich_tables(runs, width)]
    else:
        body = [part for machine, group in groups
                for part in (_rich_heading(machine, group), _rich_environment(group), _rich_tables(group, width))]
    notes = [Text(f"  {line}") for r in runs for line in problems(r.document)]
    return Group(*body, *notes, Text(legend(runs), style="dim"))


def _rich_heading(machine: str, runs: list[Run]):
    from rich.text import Text

    return Text(f"\n{machine_heading(machine, runs)}", style="bold")


def _rich_tables(runs: list[Run], width: int | None = None):
    """The scenarios' tables of one machine (or of a report that is not grouped by machine)."""
    from rich import box
    from rich.console import Console, Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    width = width or Console().width
    styles = {"ok": "green", "unavailable": "yellow"}
    tables, hidden = [], {}
    for scenario, items in by_scenario(entries(runs)).items():
        tables += _rich_inference(scenario, items, width)
        items = inference.training_entries(items)
        if not items:
            continue
        all_columns, all_cells = table(items)
        columns, cells = fitting(all_columns, all_cells, width)
        hidden.update(dict.fromkeys(c.name for c in all_columns if c not in columns))
        t = Table(title=scenario, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for c in columns:
            t.add_column(c.name, justify="right" if c.right else "left", no_wrap=c.name == "samples/s")
        status = next(i for i, c in enumerate(columns) if c.name == "status")
        for e, row in zip(items, cells):
            row = [escape(c) for c in row]
            row[status] = f"[{styles.get(e.row.get('status'), 'red')}]{row[status]}[/]"
            t.add_row(*row)
        tables.append(t)
        if spread := outcomes(items):
            o = Table(title=f"{scenario}: outcomes over seeds", title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False)
            for i, name in enumerate(spread[0]):
                o.add_column(name, justify="left" if i == 0 else "right")
            for row in spread[1]:
                o.add_row(*(escape(c) for c in row))
            tables.append(o)
    if hidden:
        tables.append(Text(f"not shown for the terminal's width: {', '.join(hidden)} (--format markdown has all)",
                           style="dim"))
    return Group(*tables)


def _fitting_inference(header: list[str], rows: list[list[str]], right: list[bool], width: int):
    """The inference columns that fit ``width`` characters, the least telling dropped first."""
    keep = list(range(len(header)))
    for name in INFERENCE_DROPS:
        if sum(max([len(header[i])] + [len(r[i]) for r in rows]) + 2 for i in keep) <= width:
            break
        keep = [i for i in keep if header[i] != name]
    return [header[i] for i in keep], [[r[i] for i in keep] for r in rows], [right[i] for i in keep]


def _rich_inference(scenario: str, items: list[Entry], width: int) -> list:
    """The scenario's inference table for the terminal (none when nothing measured inference)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    found = inference.table(items)
    if not found:
        return []
    header, rows, right = _fitting_inference(*found, width)
    t = Table(title=f"{scenario}: inference", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, r in zip(header, right):
        t.add_column(name, justify="right" if r else "left")
    for row in rows:
        t.add_row(*(escape(c) for c in row))
    return [t]


def _rich_environment(runs: list[Run]):
    from rich.markup import escape
    from rich.table import Table

    header, rows = environment_table(runs)
    env = Table(title="environment", title_justify="left", show_header=len(runs) > 1)
    for h in header:
        env.add_column(h)
    for row in rows:
        env.add_row(*(escape(c) for c in row))
    return env
