"""``dlbench report``, ``dlbench compare`` and ``dlbench history``: thin click
commands over :mod:`dlbench.report.table`, :mod:`dlbench.report.compare` and
:mod:`dlbench.report.history`. Nothing heavy is imported until a command runs, so
``dlbench --help`` stays free of matplotlib and of every framework.

Bad input raises :class:`dlbench.errors.InputError`, which the ``dlbench``
group prints as one line with exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dlbench.errors import InputError
from dlbench.report.render import FORMATS as REPORT_FORMATS

DEFAULT_ROOT = Path("results")


class Percent(click.ParamType):
    """``5%`` or ``5`` -> 0.05."""

    name = "PERCENT"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        try:
            number = float(str(value).strip().rstrip("%"))
        except ValueError:
            self.fail(f"expected a percentage such as 5%, got {value!r}", param, ctx)
        if number < 0:
            self.fail(f"must not be negative, got {value!r}", param, ctx)
        return number / 100


# ------------------------------------------------------------- options, once
root_option = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_ROOT,
                           show_default=True, help="Folder of stored runs (<machine-id>/NNNN_<commit>_<time>.json).")
scenario_filter = click.option("--scenario", "-s", "scenarios", multiple=True, metavar="NAME",
                               help="Only this scenario (repeatable).")
backend_filter = click.option("--backend", "-b", "backends", multiple=True, metavar="NAME",
                              help="Only this backend (repeatable).")


def _format_option(choices: tuple[str, ...], default: str | None, help_text: str):
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=bool(default),
                        help=help_text)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder: {exc.strerror}", field="--out", source=str(folder)) from None


def _echo(text: str, out: Path | None, inputs=()) -> None:
    """Print ``text``, or write it to ``out``: atomically, and never over a
    result document or one of ``inputs`` (see :func:`dlbench.results.files.write_file`)."""
    from dlbench.results.files import write_file

    if out is None:
        click.echo(text, nl=False)
        return
    write_file(out, text, inputs=inputs)
    click.echo(f"wrote {out}", err=True)


def _print_rich(renderable) -> None:
    from rich.console import Console

    Console().print(renderable)


# ------------------------------------------------------------------ report
@click.command()
@click.argument("runs", nargs=-1, type=click.Path(dir_okay=False, path_type=Path), metavar="[RUN.json]...")
@click.option("--latest", is_flag=True, help="Also report the newest run stored under --root.")
@root_option
@_format_option(REPORT_FORMATS, None,
                "Output format. Default: from --out's suffix (.md, .csv, .html, .json), else a terminal table.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Write the report here (Markdown gets its PNG plots beside it). Default: print it.")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="Plots: PNG files next to a Markdown --out, embedded in HTML.")
def report(runs, latest, root, fmt, out, plots):
    """Tables and plots of one or more result documents, side by side."""
    from dlbench.report import history, table as reporting
    from dlbench.report import render as report_formats
    from dlbench.results.files import check_replaceable

    paths = list(runs) + ([history.latest(root)] if latest else [])
    if not paths:
        raise InputError("name one or more RUN.json files, or pass --latest", field="RUN.json")
    fmt = report_formats.output_format(fmt, out)
    if out is not None:  # refused before the plots beside it are drawn
        check_replaceable(out, paths)
    loaded = reporting.load_runs(paths)
    if fmt == "table":
        _print_rich(report_formats.rich_report(loaded))
        return
    if out is not None:
        _make_folder(out.parent)
    _echo(report_formats.render(loaded, fmt, out, with_plots=plots), out, paths)


# ----------------------------------------------------------------- compare
@click.command()
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path), metavar="BASE.json")
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path), metavar="NEW.json")
@click.option("--threshold", type=Percent(), default="5%", show_default=True,
              help="Change of median samples/s that counts as a regression (or improvement).")
@click.option("--accuracy-tolerance", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="Drop of test accuracy (absolute) that counts as a regression.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True,
              help="Significance level of the Mann-Whitney U test on raw samples.")
@_format_option(("table", "markdown", "json"), "table", "Output format.")
def compare(base, new, threshold, accuracy_tolerance, alpha, fmt):
    """Per (scenario, backend): change of speed and accuracy from BASE to NEW.

    A slowdown beyond the threshold that a Mann-Whitney U test on the raw
    samples cannot tell from noise is reported as inconclusive. Exit code 1
    when anything regressed (slower, less accurate, no longer ok or agreeing),
    else 0."""
    import json

    from dlbench.report import compare as comparing
    from dlbench.report.table import label_runs
    from dlbench.results.document import read_document

    documents = read_document(base), read_document(new)
    changes = comparing.compare(*documents, comparing.default_checks(threshold, accuracy_tolerance, alpha))
    labels = label_runs(list(documents))
    if fmt == "json":
        click.echo(json.dumps({"base": str(base), "new": str(new), "changes": comparing.as_json(changes, alpha)},
                              indent=1))
    elif fmt == "markdown":
        click.echo(comparing.markdown(changes, (labels[0], labels[1]), threshold, alpha), nl=False)
    else:
        _print_comparison(comparing, changes, documents, (base, new), labels, threshold, alpha)
    sys.exit(comparing.exit_code(changes))


def _print_comparison(comparing, changes, documents, paths, labels, threshold, alpha) -> None:
    from rich.console import Console

    console = Console()
    for name, path, label in (("base", paths[0], labels[0]), ("new", paths[1], labels[1])):
        console.print(f"{name}: {path} ({label})", highlight=False, markup=False)
    for line in comparing.different_machines(*documents):
        console.print(f"[yellow]different machines, speeds are not comparable: {line}[/]", highlight=False)
    console.print(comparing.rich_table(changes, alpha))
    styles = {"regressed": "red", "inconclusive": "yellow", "improved": "green"}
    for verdict, text in comparing.reasons(changes):
        console.print(f"  {verdict}: {text}", style=styles[verdict], markup=False, highlight=False)
    console.print(comparing.summary(changes, threshold), style="bold red" if comparing.exit_code(changes) else "bold",
                  highlight=False)


# ----------------------------------------------------------------- history
@click.command("history")
@root_option
@scenario_filter
@backend_filter
@click.option("--metric", default="samples_per_sec", show_default=True,
              help="Any numeric metric of the result rows (test_accuracy, compile_seconds, ...).")
@click.option("--machine", metavar="ID", help="Only runs of this machine id (the folder name under --root).")
@_format_option(("table", "csv", "json"), "table", "Output format.")
def history_(root, scenarios, backends, metric, machine, fmt):
    """A metric over the stored runs, oldest first, one table per scenario."""
    from dlbench.report import history
    runs, warnings = history.load(root, machine)
    for warning in warnings:
        click.echo(f"dlbench: warning: skipped {warning}", err=True)
    if not runs:
        raise InputError("no stored run documents" + (f" for machine {machine!r}" if machine else ""),
                         field="--root", source=str(root))
    history.check_filters(runs, metric, scenarios, backends)
    points = history.points(runs, metric, scenarios, backends)
    if fmt == "table":
        _print_rich(history.rich_tables(points, metric))
    elif fmt == "csv":
        click.echo(history.as_csv(points, metric), nl=False)
    else:
        click.echo(history.as_json(points, metric), nl=False)
