"""A report in the format asked for: picks the format (from ``--format`` or the output file's suffix), makes the
pictures the format shows and hands the runs to its module in :mod:`dlbench.report.formats`:

* the terminal: :mod:`~dlbench.report.formats.terminal` (rich, fitted to its width);
* files: :mod:`~dlbench.report.formats.markdown` (with PNG plots beside it),
  :mod:`~dlbench.report.formats.html_page` (self-contained, plots embedded),
  :mod:`~dlbench.report.formats.tidy` (CSV and JSON: the tidy records).

The data flows one way: table model (:mod:`dlbench.report.table`) -> runs by machine -> a format -> text. The
formats' entry points are named here too, so that a caller imports one module whatever it writes."""

from __future__ import annotations

from pathlib import Path

from dlbench.errors import InputError
from dlbench.report.formats.html_page import html_body, html_images, html_legend, render_html
from dlbench.report.formats.machines import by_machine
from dlbench.report.formats.markdown import markdown_table, render_markdown
from dlbench.report.formats.terminal import rich_report, rich_table, rich_tables
from dlbench.report.formats.tidy import inference_records, render_csv, render_json, tidy_record, tidy_records
from dlbench.report.table import Run
from dlbench.results.document import safe_name

__all__ = ["FORMATS", "SUFFIX_FORMATS", "output_format", "render",
           "render_csv", "render_json", "render_markdown", "render_html", "markdown_table",
           "html_body", "html_images", "html_legend", "rich_report", "rich_table", "rich_tables",
           "tidy_record", "tidy_records", "inference_records"]

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
