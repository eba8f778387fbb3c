"""Result documents as tables: terminal (rich), Markdown, CSV, HTML and JSON.

A report shows one or several runs (result documents). Each scenario gets a
table with one row per backend (and per run, when runs from different
machines or versions are shown side by side, each labelled by what differs
in its environment). Speed ratios are only computed inside one run: absolute
throughput means something only next to its environment, which heads the
report. A metric a row lacks (an older run, a failed backend) shows as "-".
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dlbench.errors import InputError
from dlbench.parity import HORIZON_STEPS, REFERENCE_BACKEND

UNSTABLE_CV = 0.10
LEGEND = (f"samples/s: steady-state median ± IQR (over repeats, or over windows of steps for a single "
          f"run); * marks an unstable result (std > {UNSTABLE_CV:.0%} of the mean). vs fastest, "
          f"vs {REFERENCE_BACKEND}: ratio of median samples/s within the same run. agrees: the loss within "
          f"rtol of the {REFERENCE_BACKEND} reference at every step of the first {HORIZON_STEPS} (later "
          "float32 drift is reported, not judged) and test accuracy within atol; networks with dropout "
          "are judged on accuracy only. "
          "compile s: time of the first step (tracing, JIT). % peak: achieved GFLOP/s as a share of the "
          "machine's measured fp32 matmul peak.")


@dataclass(frozen=True)
class Run:
    """One result document and the label it has in a report."""

    label: str
    document: dict

    @property
    def environment(self) -> dict:
        return self.document.get("environment") or {}

    @property
    def settings(self) -> dict:
        return self.document.get("settings") or {}


def load_runs(paths) -> list[Run]:
    from dlbench.results import read_document

    return runs_of([read_document(p) for p in paths])


def runs_of(documents: list[dict]) -> list[Run]:
    return [Run(label, doc) for label, doc in zip(label_runs(documents), documents)]


def _facts(document: dict) -> dict[str, str | None]:
    """What may tell runs apart, most telling first."""
    env, settings = document.get("environment") or {}, document.get("settings") or {}
    threads = settings.get("threads")
    facts = {"host": env.get("hostname"), "cpu": env.get("cpu"), "gpu": ", ".join(env.get("gpus") or []) or None,
             "device": settings.get("device"), "threads": f"{threads} threads" if threads else None,
             "commit": env.get("git_commit"), "dlbench": f"dlbench {env['dlbench']}" if env.get("dlbench") else None}
    for dist, version in sorted((env.get("versions") or {}).items()):
        facts[dist] = f"{dist} {version}"
    return facts


def label_runs(documents: list[dict], max_parts: int = 3) -> list[str]:
    """A short label per run: its host (one run), else the facts that differ."""
    facts = [_facts(d) for d in documents]
    keys = [k for k in dict.fromkeys(k for f in facts for k in f) if len({f.get(k) for f in facts}) > 1]
    keys = keys or ["host"]
    labels = [" ".join(str(f[k]) for k in keys[:max_parts] if f.get(k)) or "run" for f in facts]
    if len(set(labels)) < len(labels):
        labels = [f"{label} {d.get('created', '')}".strip() for label, d in zip(labels, documents)]
    if len(set(labels)) < len(labels):
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    return labels


# ------------------------------------------------------------------ entries
@dataclass(frozen=True)
class Entry:
    """One result row of one run, with the speed ratios of its run."""

    run: Run
    row: dict
    vs_fastest: float | None = None
    vs_reference: float | None = None

    @property
    def metrics(self) -> dict:
        return self.row.get("metrics") or {}

    @property
    def scenario(self) -> str:
        return str(self.row.get("scenario", "?"))

    @property
    def backend(self) -> str:
        return str(self.row.get("backend", "?"))

    @property
    def point(self) -> dict:
        return self.row.get("sweep_point") or {}


def point_key(point: dict | None) -> str:
    return json.dumps(point or {}, sort_keys=True)


def point_label(point: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (point or {}).items()) or "-"


def _ratios(rows: list[dict]) -> dict[int, tuple[float | None, float | None]]:
    speed = {id(r): (r.get("metrics") or {}).get("samples_per_sec") if r.get("status") == "ok" else None
             for r in rows}
    known = [s for s in speed.values() if s]
    fastest = max(known, default=None)
    ref = next((speed[id(r)] for r in rows if r.get("backend") == REFERENCE_BACKEND), None)
    return {i: (s / fastest if s and fastest else None, s / ref if s and ref else None) for i, s in speed.items()}


def entries(runs: list[Run]) -> list[Entry]:
    """Every row of every run, grouped by scenario, sweep point, backend
    (the reference first), then run."""
    groups: dict[tuple, list[dict]] = {}
    for index, run in enumerate(runs):
        for row in run.document.get("results") or []:
            groups.setdefault((index, row.get("scenario"), point_key(row.get("sweep_point"))), []).append(row)
    found = []
    for (index, _, _), rows in groups.items():
        ratios = _ratios(rows)
        found += [Entry(runs[index], row, *ratios[id(row)]) for row in rows]
    scenarios = _first_seen(e.scenario for e in found)
    points = _first_seen(point_key(e.point) for e in found)
    backends = _first_seen(e.backend for e in sorted(found, key=lambda e: e.backend != REFERENCE_BACKEND))
    run_index = {id(run): i for i, run in enumerate(runs)}
    return sorted(found, key=lambda e: (scenarios[e.scenario], points[point_key(e.point)], backends[e.backend],
                                        run_index[id(e.run)]))


def _first_seen(values) -> dict:
    return {v: i for i, v in enumerate(dict.fromkeys(values))}


def by_scenario(items: list[Entry]) -> dict[str, list[Entry]]:
    grouped: dict[str, list[Entry]] = {}
    for e in items:
        grouped.setdefault(e.scenario, []).append(e)
    return grouped


# -------------------------------------------------------------------- cells
def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _count(value) -> str:
    """Throughput-like numbers: thousands separators, 3 significant digits below 100."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def unstable(metrics: dict) -> bool:
    if "unstable" in metrics:
        return bool(metrics["unstable"])
    cv = (metrics.get("samples_per_sec_stats") or {}).get("cv")
    return cv is not None and cv > UNSTABLE_CV


def speed_cell(metrics: dict) -> str:
    sps = metrics.get("samples_per_sec")
    if sps is None:
        return "-"
    stats = metrics.get("samples_per_sec_stats") or {}
    spread = f" ± {_count(stats['iqr'])}" if stats.get("n", 0) > 1 and stats.get("iqr") is not None else ""
    return _count(sps) + spread + (" *" if unstable(metrics) else "")


def agreement(row: dict) -> str:
    p = row.get("parity")
    if row.get("backend") == REFERENCE_BACKEND and row.get("status") == "ok":
        return "reference"
    if not p:
        return "-"
    over = p.get("first_step_over")
    if p.get("agrees"):
        if p.get("kind") == "accuracy-only":
            return "yes (accuracy)"
        return "yes" if over is None else f"yes (drifts at step {over})"
    if over is not None and over < p.get("horizon", math.inf):
        return f"no (step {over})"
    return f"no (acc {_num(p.get('accuracy_diff'), '+.3f')})"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}×" if value >= 0.01 else f"{value:.2g}×"


def _percent(fraction) -> str:
    if fraction is None:
        return "-"
    return f"{fraction * 100:.0f}%" if fraction >= 0.1 else f"{fraction * 100:.2g}%"


@dataclass(frozen=True)
class Column:
    name: str
    cell: Callable[[Entry], str]
    right: bool = True
    #: shown only when this says so for the table's entries (None: always)
    shown: Callable[[list[Entry]], bool] | None = None


def _some(cell: Callable[[Entry], str]) -> Callable[[list[Entry]], bool]:
    return lambda items: any(cell(e) != "-" for e in items)


def _m(key: str, fmt: str) -> Callable[[Entry], str]:
    return lambda e: _num(e.metrics.get(key), fmt)


COLUMNS = (
    Column("backend", lambda e: e.backend, right=False),
    Column("run", lambda e: e.run.label, right=False, shown=lambda items: len({id(e.run) for e in items}) > 1),
    Column("batch", lambda e: str(e.point.get("batch_size", "-")),
           shown=lambda items: any("batch_size" in e.point for e in items)),
    Column("threads", lambda e: str(e.point.get("threads", "-")),
           shown=lambda items: any("threads" in e.point for e in items)),
    Column("status", lambda e: str(e.row.get("status", "-")), right=False),
    Column("device", lambda e: str(e.row.get("device") or "-"), right=False,
           shown=lambda items: any(e.row.get("device") not in (None, "cpu") for e in items)),
    Column("agrees", lambda e: agreement(e.row), right=False),
    Column("test acc", _m("test_accuracy", ".4f")),
    Column("final loss", _m("final_loss", ".4g")),
    Column("samples/s", lambda e: speed_cell(e.metrics)),
    Column("vs fastest", lambda e: _ratio(e.vs_fastest)),
    Column(f"vs {REFERENCE_BACKEND}", lambda e: _ratio(e.vs_reference)),
    Column("compile s", _m("compile_seconds", ".3f")),
    Column("time to acc s", _m("time_to_accuracy", ".3f"), shown=_some(_m("time_to_accuracy", ".3f"))),
    Column("GFLOP/s", _m("gflops_per_sec", ".3g"), shown=_some(_m("gflops_per_sec", ".3g"))),
    Column("% peak", lambda e: _percent(e.metrics.get("peak_fraction")),
           shown=_some(lambda e: _percent(e.metrics.get("peak_fraction")))),
    Column("peak MiB", _m("peak_rss_mib", ",.0f"), shown=_some(_m("peak_rss_mib", ",.0f"))),
    Column("device MiB", _m("peak_device_mib", ",.0f"), shown=_some(_m("peak_device_mib", ",.0f"))),
    Column("wall s", _m("wall_seconds", ".1f"), shown=_some(_m("wall_seconds", ".1f"))),
)


def table(items: list[Entry]) -> tuple[list[Column], list[list[str]]]:
    """The columns worth showing for these entries, and their cells."""
    columns = [c for c in COLUMNS if c.shown is None or c.shown(items)]
    return columns, [[c.cell(e) for c in columns] for e in items]


def problems(document: dict) -> list[str]:
    """One line per row that did not finish ok: what went wrong."""
    return [f"{r.get('scenario')} / {r.get('backend')}: {r.get('status')}: {r.get('error')}"
            for r in document.get("results") or [] if r.get("status") != "ok"]


# -------------------------------------------------------------- environment
def _cores(env: dict) -> str | None:
    if env.get("logical_cores") is None:
        return None
    return (f"{env.get('physical_cores', '?')} physical / {env['logical_cores']} logical, "
            f"{env.get('available_cores', '?')} available")


def _blas(env: dict) -> str | None:
    libs = dict.fromkeys(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})"
                         for b in env.get("blas") or [])
    return ", ".join(libs) or None


def _peaks(env: dict) -> str | None:
    peaks = env.get("peak_gflops") or {}
    return ", ".join(f"{k} {v:,.0f}" for k, v in peaks.items() if v is not None) or None


def _settings(settings: dict) -> str | None:
    parts = [f"device {settings['device']}" if settings.get("device") else None,
             f"{settings['threads']} threads" if settings.get("threads") else None,
             f"repeat {settings['repeat']}" if settings.get("repeat") else None,
             settings.get("precision"),
             "deterministic" if settings.get("deterministic") else None,
             "; ".join(f"{k}={v}" for k, v in (settings.get("overrides") or {}).items()) or None,
             "sweep " + "; ".join(f"{k}={','.join(map(str, v))}" for k, v in settings["sweep"].items())
             if settings.get("sweep") else None]
    return ", ".join(p for p in parts if p) or None


ENVIRONMENT_FIELDS: tuple[tuple[str, Callable[[Run], str | None]], ...] = (
    ("created", lambda r: r.document.get("created")),
    ("command", lambda r: " ".join(r.document.get("command") or []) or None),
    ("host", lambda r: r.environment.get("hostname")),
    ("CPU", lambda r: r.environment.get("cpu")),
    ("cores", lambda r: _cores(r.environment)),
    ("memory GiB", lambda r: _num(r.environment.get("memory_gib"), "g")),
    ("GPU", lambda r: ", ".join(r.environment.get("gpus") or []) or None),
    ("settings", lambda r: _settings(r.settings)),
    ("BLAS", lambda r: _blas(r.environment)),
    ("peak GFLOP/s", lambda r: _peaks(r.environment)),
    ("OS", lambda r: r.environment.get("os")),
    ("Python", lambda r: r.environment.get("python")),
    ("dlbench", lambda r: r.environment.get("dlbench")),
    ("commit", lambda r: r.environment.get("git_commit")),
)


def environment_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one column per run, one row per fact, framework versions last."""
    rows = [[name] + [get(r) or "-" for r in runs] for name, get in ENVIRONMENT_FIELDS]
    dists = dict.fromkeys(d for r in runs for d in r.environment.get("versions") or {})
    rows += [[d] + [(r.environment.get("versions") or {}).get(d, "-") for r in runs] for d in dists]
    return ["", *(r.label for r in runs)], rows


def scenario_description(runs: list[Run], name: str) -> str | None:
    """The ``description`` of the scenario file a run used, or of the shipped one."""
    import tomllib

    from dlbench.scenario import scenario_files

    paths = [(r.settings.get("scenarios") or {}).get(name) for r in runs] + [scenario_files().get(name)]
    for path in filter(None, paths):
        try:
            with open(path, "rb") as f:
                return str(tomllib.load(f)["description"])
        except (OSError, KeyError, ValueError):
            continue
    return None


# ---------------------------------------------------------------- renderers
def tidy_records(runs: list[Run]) -> list[dict]:
    """One flat record per scenario x backend x run (x sweep point): raw values, no formatting."""
    records = []
    for e in entries(runs):
        m, p = e.metrics, e.row.get("parity") or {}
        stats = m.get("samples_per_sec_stats") or {}
        records.append({
            "run": e.run.label, "created": e.run.document.get("created"),
            "host": e.run.environment.get("hostname"), "commit": e.run.environment.get("git_commit"),
            "scenario": e.scenario, "backend": e.backend, "sweep_batch_size": e.point.get("batch_size"),
            "sweep_threads": e.point.get("threads"), "status": e.row.get("status"), "error": e.row.get("error"),
            "device": e.row.get("device"), "threads": e.row.get("threads"),
            "backend_version": e.row.get("backend_version"), "agrees": p.get("agrees"),
            "max_rel_loss_diff": p.get("max_rel_loss_diff"), "test_accuracy": m.get("test_accuracy"),
            "final_loss": m.get("final_loss"), "samples_per_sec": m.get("samples_per_sec"),
            "samples_per_sec_q1": stats.get("q1"), "samples_per_sec_q3": stats.get("q3"),
            "samples_per_sec_iqr": stats.get("iqr"), "samples_per_sec_n": stats.get("n"),
            "unstable": unstable(m), "vs_fastest": e.vs_fastest, f"vs_{REFERENCE_BACKEND}": e.vs_reference,
            **{k: m.get(k) for k in ("compile_seconds", "time_to_accuracy", "gflops_per_sec", "peak_fraction",
                                     "peak_rss_mib", "peak_device_mib", "steps", "batch_size", "wall_seconds")},
        })
    return records


def render_csv(runs: list[Run]) -> str:
    records = tidy_records(runs)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]) if records else ["run"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)
    return out.getvalue()


def render_json(runs: list[Run]) -> str:
    summary = {"runs": [{"label": r.label, "path": r.document.get("path"), "created": r.document.get("created"),
                         "environment": r.environment, "settings": r.settings} for r in runs],
               "rows": tidy_records(runs)}
    return json.dumps(summary, indent=1, default=str) + "\n"


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _md_table(header: list[str], rows: list[list[str]], right: list[bool]) -> list[str]:
    rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
    return [_md_row(header), rule, *(_md_row(r) for r in rows)]


def render_markdown(runs: list[Run], pictures: dict[str | None, list] | None = None) -> str:
    """GitHub Markdown; ``pictures`` maps a scenario (None: the whole report)
    to (title, file name) pairs placed under its table."""
    pictures = pictures or {}
    header, rows = environment_table(runs)
    lines = ["# dlbench results", "", LEGEND, "", "## Environment", "",
             *_md_table(header, rows, [False] * len(header))]
    for scenario, items in by_scenario(entries(runs)).items():
        columns, cells = table(items)
        about = scenario_description(runs, scenario)
        lines += ["", f"## {scenario}", *(["", about] if about else []), "",
                  *_md_table([c.name for c in columns], cells, [c.right for c in columns])]
        lines += [line for title, name in pictures.get(scenario, []) for line in ("", f"![{title}]({name})")]
    if pictures.get(None):
        lines += ["", "## Throughput"]
        lines += [line for title, name in pictures[None] for line in ("", f"![{title}]({name})")]
    notes = [f"{r.label}: {line}" if len(runs) > 1 else line for r in runs for line in problems(r.document)]
    if notes:
        lines += ["", "## Problems", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def markdown_table(document: dict) -> str:
    """The Markdown report of one document, without pictures (``dlbench run --format markdown``)."""
    return render_markdown(runs_of([document]))


HTML_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
              "margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f3f3f3}"
              "td.r{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}p.legend{max-width:60em}")


def _html_table(header: list[str], rows: list[list[str]], right: list[bool]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{' class=r' if r else ''}>{html.escape(c)}</td>"
                                    for c, r in zip(row, right)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(runs: list[Run], pictures: dict[str | None, list] | None = None) -> str:
    """One self-contained file: inline style, pictures as base64 data URIs
    (``pictures`` maps a scenario or None to (title, PNG bytes) pairs)."""
    import base64

    def images(key):
        return "".join(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
                       f'{base64.b64encode(png).decode()}"></figure>' for title, png in (pictures or {}).get(key, []))

    header, rows = environment_table(runs)
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>dlbench results</title>"
             f"<style>{HTML_STYLE}</style></head><body><h1>dlbench results</h1>",
             f"<p class=legend>{html.escape(LEGEND)}</p><h2>Environment</h2>",
             _html_table(header, rows, [False] * len(header))]
    for scenario, items in by_scenario(entries(runs)).items():
        columns, cells = table(items)
        about = scenario_description(runs, scenario)
        parts += [f"<h2>{html.escape(scenario)}</h2>", f"<p>{html.escape(about)}</p>" if about else "",
                  _html_table([c.name for c in columns], cells, [c.right for c in columns]), images(scenario)]
    if (pictures or {}).get(None):
        parts += ["<h2>Throughput</h2>", images(None)]
    notes = [line for r in runs for line in problems(r.document)]
    if notes:
        parts += ["<h2>Problems</h2><ul>", *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"]
    return "".join(parts) + "</body></html>\n"


#: dropped first, in this order, when a terminal is too narrow for every column
NARROW_DROPS = ("wall s", "device MiB", "peak MiB", "GFLOP/s", "% peak", "time to acc s", "final loss",
                "vs fastest", "compile s", "agrees")


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
    """One rich table per scenario, status coloured, narrowed to the terminal's ``width``."""
    from rich import box
    from rich.console import Console, Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    width = width or Console().width
    styles = {"ok": "green", "unavailable": "yellow"}
    tables, hidden = [], {}
    for scenario, items in by_scenario(entries(runs)).items():
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
    if hidden:
        tables.append(Text(f"not shown for the terminal's width: {', '.join(hidden)} (--format markdown has all)",
                           style="dim"))
    return Group(*tables)


def rich_table(document: dict):
    """The tables of one document (printed by ``dlbench run``)."""
    return rich_tables(runs_of([document]))


def rich_report(runs: list[Run]):
    """Environment, tables and problems, for ``dlbench report`` on a terminal."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    header, rows = environment_table(runs)
    env = Table(title="environment", title_justify="left", show_header=len(runs) > 1)
    for h in header:
        env.add_column(h)
    for row in rows:
        env.add_row(*(escape(c) for c in row))
    notes = [Text(f"  {line}") for r in runs for line in problems(r.document)]
    return Group(env, rich_tables(runs), *notes, Text(LEGEND, style="dim"))


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
    ``out`` gets them as PNG files beside it (``<stem>-<picture>.png``)."""
    if fmt == "csv":
        return render_csv(runs)
    if fmt == "json":
        return render_json(runs)
    wanted = with_plots and (fmt == "html" or (fmt == "markdown" and out is not None))
    found = _pictures(runs) if wanted else {}
    if fmt == "html":
        return render_html(runs, {k: [(p.title, p.png) for p in v] for k, v in found.items()})
    return render_markdown(runs, {k: [(p.title, _write_png(p, out)) for p in v] for k, v in found.items()})


def _pictures(runs: list[Run]) -> dict:
    from dlbench import plots  # matplotlib is imported only here

    return plots.pictures(runs)


def _write_png(picture, out: Path) -> str:
    name = f"{out.stem}-{picture.key}.png"
    (out.parent / name).write_bytes(picture.png)
    return name
