"""Renderers of a report: CSV (tidy), JSON, Markdown (with PNG plots),
self-contained HTML (plots embedded) and the terminal (rich, fitted to its
width). The table model they render is :mod:`dlbench.report.table`."""

from __future__ import annotations

import html
import json
from pathlib import Path

from dlbench.errors import InputError
from dlbench.report import inference
from dlbench.report.escape import csv_text, markdown_text
from dlbench.parity.verdict import REFERENCE_BACKEND
from dlbench.report.table import (Column, Entry, Run, by_scenario, entries, environment_table, legend, legend_items,
                                  outcomes, problems, runs_of, scenario_description, table, unstable)
from dlbench.results.document import safe_name
from dlbench.results.store import machine_id


# ----------------------------------------------------------------- machines
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


def _with_machine(records: list[dict], machine: str | None) -> list[dict]:
    """Records of a report grouped by machine carry it, after their host (or run)."""
    if machine is None:
        return records
    out = []
    for record in records:
        items = list(record.items())
        at = next((i + 1 for i, (k, _) in enumerate(items) if k == "host"), 1)
        out.append(dict([*items[:at], ("machine", machine), *items[at:]]))
    return out


def tidy_records(runs: list[Run]) -> list[dict]:
    """One flat record per scenario x backend x run (x sweep point): raw values, no formatting."""
    return [record for machine, group in by_machine(runs)
            for record in _with_machine([tidy_record(e) for e in entries(group)], machine)]


def tidy_record(e: Entry) -> dict:
    """The flat record of one entry (a CSV line, a pandas row)."""
    m, p = e.metrics, e.row.get("parity") or {}
    stats = m.get("samples_per_sec_stats") or {}
    return {
        "run": e.run.label, "created": e.run.document.get("created"),
        "host": e.run.environment.get("hostname"), "commit": e.run.environment.get("git_commit"),
        "scenario": e.scenario, "backend": e.backend, "sweep_batch_size": e.point.get("batch_size"),
        "sweep_threads": e.point.get("threads"), "precision": e.row.get("precision") or e.point.get("precision"),
        "speedup": e.speedup, "accuracy_vs_fp32": e.accuracy_vs_fp32, "mode": e.row.get("mode", "train"),
        **distributed_fields(e),
        "status": e.row.get("status"),
        "error": e.row.get("error"),
        "device": e.row.get("device"), "threads": e.row.get("threads"),
        "backend_version": e.row.get("backend_version"), "agrees": p.get("agrees"),
        "verdict": p.get("verdict"), "verdict_reason": p.get("reason"),
        "max_rel_loss_diff": p.get("max_rel_loss_diff"), "test_accuracy": m.get("test_accuracy"),
        "test_r2": m.get("test_r2"), "test_loss": m.get("test_loss"),
        "final_loss": m.get("final_loss"), "samples_per_sec": m.get("samples_per_sec"),
        "samples_per_sec_q1": stats.get("q1"), "samples_per_sec_q3": stats.get("q3"),
        "samples_per_sec_iqr": stats.get("iqr"), "samples_per_sec_n": stats.get("n"),
        "unstable": unstable(m), "vs_fastest": e.vs_fastest, f"vs_{REFERENCE_BACKEND}": e.vs_reference,
        **{k: m.get(k) for k in ("compile_seconds", "time_to_accuracy", "gflops_per_sec", "peak_fraction",
                                 "peak_rss_mib", "peak_device_mib", "steps", "batch_size", "wall_seconds",
                                 "skipped_steps", "loss_scale")},
    }


def distributed_fields(e: Entry) -> dict:
    """A record's data-parallel facts (None for a run that is not data-parallel)."""
    d = e.row.get("distributed") or {}
    return {"replicas": d.get("world_size", e.point.get("data_parallel")), "engine": d.get("engine"),
            "collective": d.get("collective"), "threads_per_replica": d.get("threads_per_replica"),
            "scaling": d.get("scaling"), "batchnorm": d.get("batchnorm"),
            "samples_per_sec_per_replica": e.metrics.get("samples_per_sec_per_replica"),
            "scaling_efficiency": e.scaling_efficiency, "thread_efficiency": e.thread_efficiency,
            "communication_seconds_per_step": d.get("communication_seconds_per_step")}


def inference_records(runs: list[Run]) -> list[dict]:
    """One flat record per inference batch size of every row that measured inference."""
    return [record for machine, group in by_machine(runs)
            for record in _with_machine(inference.records(entries(group)), machine)]


def render_csv(runs: list[Run]) -> str:
    """The tidy records, then (with their own columns added) the inference records."""
    records = tidy_records(runs) + inference_records(runs)
    fields = list(dict.fromkeys(k for r in records for k in r)) or ["run"]
    return csv_text(records, fields)


def render_json(runs: list[Run]) -> str:
    summary = {"runs": [{"label": r.label, "path": r.document.get("path"), "created": r.document.get("created"),
                         "environment": r.environment, "settings": r.settings} for r in runs],
               "rows": tidy_records(runs), "inference": inference_records(runs)}
    groups = by_machine(runs)
    if groups[0][0] is not None:
        summary["machines"] = {machine: group[0].environment for machine, group in groups}
    return json.dumps(summary, indent=1, default=str) + "\n"


def _md_row(cells) -> str:
    return "| " + " | ".join(markdown_text(c) for c in cells) + " |"


def _md_table(header: list[str], rows: list[list[str]], right: list[bool]) -> list[str]:
    rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
    return [_md_row(header), rule, *(_md_row(r) for r in rows)]


def render_markdown(runs: list[Run], pictures: dict | None = None) -> str:
    """GitHub Markdown; ``pictures`` maps a scenario (None: the whole report)
    to (title, file name) pairs placed under its table; in a report grouped
    by machine (:func:`by_machine`), a machine id to such a map."""
    pictures = pictures or {}
    lines = ["# dlbench results", "", legend(runs)]
    for machine, group in by_machine(runs):
        if machine is None:
            lines += _md_sections(group, pictures)
        else:
            heading = f"## {markdown_text(machine_heading(machine, group))}"
            lines += ["", heading, *_md_sections(group, pictures.get(machine) or {}, "###")]
    notes = [f"{r.label}: {line}" if len(runs) > 1 else line for r in runs for line in problems(r.document)]
    if notes:
        lines += ["", "## Problems", "", *(f"- {markdown_text(n)}" for n in notes)]
    return "\n".join(lines) + "\n"


def _md_sections(runs: list[Run], pictures: dict, level: str = "##") -> list[str]:
    """The environment, a section per scenario and the throughput pictures, under ``level`` headings."""
    header, rows = environment_table(runs)
    lines = ["", f"{level} Environment", "", *_md_table(header, rows, [False] * len(header))]
    for scenario, items in by_scenario(entries(runs)).items():
        about = scenario_description(runs, scenario)
        lines += ["", f"{level} {markdown_text(scenario)}", *(["", markdown_text(about)] if about else [])]
        if trained := inference.training_entries(items):
            columns, cells = table(trained)
            lines += ["", *_md_table([c.name for c in columns], cells, [c.right for c in columns])]
        if found := inference.table(items):
            lines += ["", f"Inference ({markdown_text(scenario)}):", "", *_md_table(*found)]
        if spread := outcomes(items):
            lines += ["", f"Outcomes over seeds ({markdown_text(scenario)}):", "",
                      *_md_table(spread[0], spread[1], [False, *[True] * (len(spread[0]) - 1)])]
        lines += [line for title, name in pictures.get(scenario, [])
                  for line in ("", f"![{markdown_text(title)}]({name})")]
    if any(inference.lines(items) for items in by_scenario(entries(runs)).values()):
        lines += ["", inference.INFERENCE_LEGEND]
    if pictures.get(None):
        lines += ["", f"{level} Throughput"]
        lines += [line for title, name in pictures[None] for line in ("", f"![{markdown_text(title)}]({name})")]
    return lines


def markdown_table(document: dict) -> str:
    """The Markdown report of one document, without pictures (``dlbench run --format markdown``)."""
    return render_markdown(runs_of([document]))


HTML_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
              "margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f3f3f3}"
              "td.r{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}p.legend{max-width:60em}"
              "dl.legend{max-width:60em}dl.legend dt{font-weight:600}dl.legend dd{margin:0 0 .4em 1.5em}")


def _html_table(header: list[str], rows: list[list[str]], right: list[bool]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{' class=r' if r else ''}>{html.escape(c)}</td>"
                                    for c, r in zip(row, right)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(runs: list[Run], pictures: dict[str | None, list] | None = None) -> str:
    """One self-contained file: inline style, pictures as base64 data URIs
    (``pictures`` maps a scenario or None to (title, PNG bytes) pairs). The
    results come first; what their columns mean follows them."""
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>dlbench results</title>"
            f"<style>{HTML_STYLE}</style></head><body><h1>dlbench results</h1>"
            f"{html_body(runs, pictures)}{html_legend(runs)}</body></html>\n")


def html_legend(runs: list[Run]) -> str:
    """What the columns of the report's training tables mean, for the columns they show."""
    items = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(meaning)}</dd>" for name, meaning in legend_items(runs))
    return f"<h2>What the columns mean</h2><dl class=legend>{items}</dl>" if items else ""


def html_images(pictures: list) -> str:
    """(title, PNG bytes) pairs as figures with embedded images."""
    import base64

    return "".join(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}"></figure>' for title, png in pictures)


def html_body(runs: list[Run], pictures: dict | None = None) -> str:
    """The report's tables (and pictures) as an HTML fragment: the body of
    :func:`render_html`, and what a notebook shows for a run's results
    (``pictures`` as for :func:`render_markdown`)."""
    pictures = pictures or {}
    parts = []
    for machine, group in by_machine(runs):
        if machine is None:
            parts += _html_sections(group, pictures)
        else:
            parts += [f"<h2>{html.escape(machine_heading(machine, group))}</h2>",
                      *_html_sections(group, pictures.get(machine) or {}, "h3")]
    notes = [line for r in runs for line in problems(r.document)]
    if notes:
        parts += ["<h2>Problems</h2><ul>", *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"]
    return "".join(parts)


def _html_sections(runs: list[Run], pictures: dict, tag: str = "h2") -> list[str]:
    """A section per scenario, the throughput pictures, then the environment, under ``tag`` headings."""
    parts = []
    for scenario, items in by_scenario(entries(runs)).items():
        about = scenario_description(runs, scenario)
        parts += [f"<{tag}>{html.escape(scenario)}</{tag}>", f"<p>{html.escape(about)}</p>" if about else ""]
        if trained := inference.training_entries(items):
            columns, cells = table(trained)
            parts.append(_html_table([c.name for c in columns], cells, [c.right for c in columns]))
        if found := inference.table(items):
            parts += [f"<p>Inference ({html.escape(scenario)}):</p>", _html_table(*found),
                      f"<p class=legend>{html.escape(inference.INFERENCE_LEGEND)}</p>"]
        if spread := outcomes(items):
            parts += ["<p>Outcomes over seeds:</p>",
                      _html_table(spread[0], spread[1], [False, *[True] * (len(spread[0]) - 1)])]
        parts.append(html_images(pictures.get(scenario, [])))
    if pictures.get(None):
        parts += [f"<{tag}>Throughput</{tag}>", html_images(pictures[None])]
    header, rows = environment_table(runs)
    return parts + [f"<{tag}>Environment</{tag}>", _html_table(header, rows, [False] * len(header))]


#: dropped first, in this order, when a terminal is too narrow for every column
NARROW_DROPS = ("worst checkpoint", "wall s", "device MiB", "peak MiB", "GFLOP/s", "% peak", "time to acc s", "final loss",
                "vs fastest", "compile s", "comm ms/step", "per replica/s", "agrees")


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


#: inference columns dropped first, in this order, when a terminal is too narrow for every column
INFERENCE_DROPS = ("calls", "p90 ms", "mean ms", "vs fastest", "rel diff", "compile s", "status")


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


# ------------------------------------------------------------------ output
FORMATS = ("table", "markdown", "csv", "html", "json")
SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".html": "html", ".htm": "html",
                  ".json": "json"}


def output_format(fmt: str | None, out: Path | None) -> str:
    """The chosen format, else the one ``out``'s suffix names, else the terminal table."""
    if fmt:
        if fmt == "table" and out is not None:
            raise InputError("the table is for the terminal; write markdown, csv, html or json to a file",
                             field="--format")
        return fmt
    if out is None:
        return "table"
    if out.suffix.lower() not in SUFFIX_FORMATS:
        raise InputError(f"cannot tell the format from the suffix {out.suffix or '(none)'!r}; pass --format "
                         "markdown, csv, html or json", field="--out", source=str(out))
    return SUFFIX_FORMATS[out.suffix.lower()]


def render(runs: list[Run], fmt: str, out: Path | None = None, with_plots: bool = True) -> str:
    """The report as text. HTML embeds its pictures; Markdown written to
    ``out`` gets them as PNG files beside it (``<stem>-<picture>.png``, or
    ``<stem>-<machine>-<picture>.png`` in a report grouped by machine)."""
    if fmt == "csv":
        return render_csv(runs)
    if fmt == "json":
        return render_json(runs)
    wanted = with_plots and (fmt == "html" or (fmt == "markdown" and out is not None))
    found = _report_pictures(runs) if wanted else {}
    if fmt == "html":
        return render_html(runs, _each_picture(found, lambda p, machine: (p.title, p.png)))
    return render_markdown(runs, _each_picture(found, lambda p, machine: (p.title, _write_png(p, out, machine))))


def _report_pictures(runs: list[Run]) -> dict:
    """The pictures by scenario (None: the whole report); by machine first in a report grouped by machine."""
    groups = by_machine(runs)
    if groups[0][0] is None:
        return _pictures(runs)
    return {machine: _pictures(group) for machine, group in groups}


def _each_picture(found: dict, convert, machine: str | None = None) -> dict:
    """``found`` with every picture ``convert(picture, machine)``-ed, machine by machine where it is grouped."""
    return {key: _each_picture(value, convert, key) if isinstance(value, dict) else
            [convert(p, machine) for p in value] for key, value in found.items()}


def _pictures(runs: list[Run]) -> dict:
    from dlbench.report import plots  # matplotlib is imported only here

    return plots.pictures(runs)


def _write_png(picture, out: Path, machine: str | None = None) -> str:
    name = f"{out.stem}-{picture.key}.png" if machine is None else f"{out.stem}-{safe_name(machine)}-{picture.key}.png"
    from dlbench.results.files import write_file

    write_file(out.parent / name, picture.png)  # never over a result document
    return name
