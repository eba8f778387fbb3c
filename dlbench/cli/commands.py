"""What the CLI commands do, without click: validate everything first, then run."""

from __future__ import annotations

import sys
from pathlib import Path

from dlbench.plugin.manager import get_plugins
from dlbench.scenario import resolve_scenario, scenario_files

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_FAILED = 1


def run(fmt: str, out_dir: Path, require_verdict: bool = False, **options) -> int:
    """``dlbench run``: the options (named as on the command line, see
    :meth:`RunSettings.from_options`) are checked first, then the jobs run
    through :mod:`dlbench.run.runner`, as :func:`dlbench.benchmark` runs them."""
    from dlbench.run import runner
    from dlbench.run.settings import RunSettings

    plugins = get_plugins()
    for plugin, error in plugins.load_errors.items():
        print(f"dlbench: warning: plugin {plugin!r} failed to load and is skipped: {error}", file=sys.stderr)
    settings = RunSettings.from_options(plugins, **options)
    document, path = runner.new_run(settings, out_dir, ["dlbench", *sys.argv[1:]])
    with runner.writer(path):
        return _execute(settings.jobs(), settings, document, path, fmt, require_verdict)


def resume(path: Path, fmt: str, require_verdict: bool = False) -> int:
    """Run the jobs of a stopped run that have no finished row, into the same
    document, as its only writer (another run writing it is refused, exit 2)."""
    from dlbench.run import runner

    with runner.writer(path, "--resume"):
        jobs, settings, document = runner.resumable(path)
        return _execute(jobs, settings, document, Path(path), fmt, require_verdict)


def _execute(jobs, settings, document: dict, path: Path, fmt: str, require_verdict: bool = False) -> int:
    """Run, then print what ``fmt`` asks for and say how it went in the exit code."""
    from dlbench.report import render as report_formats
    from dlbench.results import document as results
    from dlbench.run import runner
    from dlbench.run.signals import Terminated, stop_signals

    try:
        with stop_signals(process_ends=True):  # once stopping, later Ctrl-Cs are ignored until the exit
            outcome = runner.execute(jobs, settings, document, path, progress=fmt != "json")
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        print(f"dlbench: {'terminated' if terminated else 'interrupted'}; finished rows kept in {path}",
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    if fmt == "json" or outcome.save_error:  # a document that could not be stored is not lost: it is printed
        sys.stdout.write(results.dumps(document) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(report_formats.markdown_table(document))
    else:
        _print_table(document, path)
    if outcome.save_error:
        print(f"dlbench: error: the result document could not be written to {path} ({outcome.save_error}); "
              "it was printed on standard output instead", file=sys.stderr)
        return EXIT_FAILED
    return runner.exit_code(document, require_verdict)


def _print_table(document: dict, path: Path) -> None:
    from dlbench.report import table as report, render as report_formats
    console = _console()
    console.print(report_formats.rich_table(document))
    for line in report.problems(document):
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"result document: {path}", highlight=False)


def _console(**kwargs):
    """A rich console; wide when writing to a file or pipe, so tables do not wrap."""
    from rich.console import Console

    c = Console(**kwargs)
    if not c.is_terminal:
        c.width = 200
    return c


def citation(source: str) -> str:
    """A scenario's source up to its first ``, '`` (the title after the authors), `` (``, ``; `` or ``: ``:
    who and when, for ``dlbench list`` ("He, Zhang, Ren & Sun 2016"); the whole source is in the file."""
    cuts = [i for i in (source.find(sep) for sep in (", '", " (", "; ", ": ")) if i > 0]
    return source[:min(cuts, default=len(source))]


def show_lists(what: list[str]) -> None:
    from rich.table import Table

    plugins = get_plugins()
    console = _console()
    if "backends" in what:
        table = Table(title="backends", title_justify="left")
        for col in ("name", "available", "version", "devices", "from", "note"):
            table.add_column(col)
        for name, backend in plugins.backends.items():
            a = backend.availability()
            plugin = plugins.backend_plugin[name]
            table.add_row(name, "yes" if a.available else "no", a.version or "-", ",".join(backend.devices),
                          plugins.distributions.get(plugin, plugin), a.reason or backend.description)
        console.print(table)
        for name, error in plugins.load_errors.items():
            console.print(f"  plugin {name!r} failed to load: {error}", markup=False)
    if "scenarios" in what:
        table = Table(title="scenarios", title_justify="left")
        for col in ("name", "dataset", "description"):
            table.add_column(col)
        table.add_column("source", max_width=40)
        for name, path in scenario_files(plugins.scenario_dirs).items():
            scenario = resolve_scenario(str(path))
            table.add_row(name, scenario.data_name, scenario.description, citation(scenario.source) or "-")
        console.print(table)
    if "datasets" in what:
        table = Table(title="datasets", title_justify="left")
        for col in ("name", "options", "description"):
            table.add_column(col)
        for name, info in plugins.datasets.items():
            table.add_row(name, ", ".join(f"{k}={v}" for k, v in info.defaults.items()), info.description)
        console.print(table)


def measure_peaks(threads: int | None, backends: str, device: str) -> dict[str, float | None]:
    """Measure and cache the matmul ceiling of each named backend ('all': every
    registered one) in float32, bfloat16 and float16 (the compute dtypes of
    fp32, bf16 and fp16 runs), on a GPU tfloat32 too (tf32 runs'); '-' for one
    that is unavailable, sees no such device or has no such matmul. Returns the float32 peaks."""
    from rich.table import Table

    from dlbench.measure import environment, peak
    from dlbench.run.checks import select_backends

    plugins = get_plugins()
    names, _ = select_backends(plugins, backends)
    threads = threads or environment.available_cores()
    env = environment.collect(plugins.backend_distributions())
    dtypes = ("float32", "tfloat32", "bfloat16", "float16") if device == "gpu" else ("float32", "bfloat16", "float16")
    by_dtype, load = {dtype: {} for dtype in dtypes}, peak.load_average()
    for name in names:
        backend = plugins.backend(name)
        measurable = peak.has_matmul(backend, device) and backend.availability().available
        for dtype in dtypes:
            by_dtype[dtype][name] = peak.measure(name, threads, dtype=dtype, device=device) if measurable else None
    for dtype, peaks in by_dtype.items():
        peak.save(env, threads, {k: v for k, v in peaks.items() if v}, load, dtype, device)
    where = (", ".join(env.get("gpus") or []) or "no GPU found by nvidia-smi") if device == "gpu" else env["cpu"]
    table = Table(title=f"matmul peak (GFLOP/s), {threads} threads, {where}", title_justify="left")
    table.add_column("backend")
    for dtype in dtypes:
        table.add_column(dtype, justify="right")
    table.add_column("bf16 / fp32", justify="right")
    for name in names:
        values = [by_dtype[dtype][name] for dtype in dtypes]
        bf16 = values[dtypes.index("bfloat16")]
        ratio = f"{bf16 / values[0]:.2f}×" if values[0] and bf16 else "-"
        table.add_row(name, *("-" if v is None else f"{v:,.1f}" for v in values), ratio)
    out = _console()
    out.print(table)
    peaks = by_dtype["float32"]
    if load >= peak.QUIET_LOAD:
        out.print(f"the machine was busy (load {load:.2f} per core): these figures may be below its ceiling; "
                  "the next run on a quiet machine measures again", highlight=False)
    out.print(f"saved to {peak.cache_path()}", highlight=False)
    return peaks
