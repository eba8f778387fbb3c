"""What the CLI commands do, without click: validate everything first, then run."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dlbench.errors import InputError, one_of
from dlbench.plugin.manager import Plugins, get_plugins
from dlbench.scenario import Scenario, resolve_scenario, scenario_files
from dlbench.spec import format_shape

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_FAILED = 1


def select_backends(plugins: Plugins, text: str) -> tuple[list[str], bool]:
    """(names, explicit): 'all' means every registered backend."""
    if text.strip() == "all":
        return list(plugins.backends), False
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(f"no backend named; {one_of(['all', *plugins.backends])}", field="--backend")
    for name in names:
        plugins.backend(name)
    return list(dict.fromkeys(names)), True


def select_scenarios(plugins: Plugins, names) -> list[str]:
    if "all" in names:
        return list(scenario_files(plugins.scenario_dirs))
    return list(dict.fromkeys(names))


def check_against_data(scenario: Scenario, plugins: Plugins) -> None:
    """The model must fit its dataset: input shape and number of classes."""
    where = scenario.path or scenario.name
    info = plugins.dataset(scenario.data_name) if scenario.data_name in plugins.datasets else None
    if info is None:
        raise InputError(f"unknown dataset {scenario.data_name!r}; {one_of(plugins.datasets)}",
                         field="data.name", source=where)
    try:
        data = info.load(scenario.train.seed, scenario.data_options)
    except InputError as exc:
        raise exc.within(source=where) from None
    if data.input_shape != scenario.model.input_shape:
        raise InputError(f"{format_shape(scenario.model.input_shape)} does not match dataset "
                         f"{scenario.data_name!r}, whose samples have shape {format_shape(data.input_shape)}",
                         field="model.input_shape", source=where)
    units = scenario.model.output_shape[0]
    if scenario.model.loss == "categorical_crossentropy" and units < data.n_classes:
        raise InputError(f"the last layer has {units} units but dataset {scenario.data_name!r} has "
                         f"{data.n_classes} classes", field="model.layers", source=where)
    if scenario.model.loss == "binary_crossentropy" and data.n_classes != 2:
        raise InputError(f"binary_crossentropy needs 2 classes; dataset {scenario.data_name!r} has "
                         f"{data.n_classes}", field="train.loss", source=where)
    check_fits_in_memory(scenario)


def check_fits_in_memory(scenario: Scenario, available_bytes: int | None = None) -> None:
    """Refuse a model that cannot train in this machine's memory (the lower
    bound of :mod:`dlbench.spec.memory`), before any worker allocates it."""
    import psutil

    from dlbench.spec.memory import training_memory_bytes

    available = available_bytes or psutil.virtual_memory().total
    need = training_memory_bytes(scenario.model, scenario.train.batch_size)
    if need["total"] > available:
        gib = 2**30
        raise InputError(f"training this model needs at least {need['total'] / gib:,.1f} GiB "
                         f"(parameters, gradients and optimizer state {need['parameters'] / gib:,.1f} GiB, "
                         f"activations of a batch of {scenario.train.batch_size} {need['activations'] / gib:,.1f} GiB);"
                         f" this machine has {available / gib:,.1f} GiB", field="model.layers",
                         source=scenario.path or scenario.name)


def load_scenarios(plugins: Plugins, names, overrides: dict) -> dict[str, Scenario]:
    loaded = {}
    for name in select_scenarios(plugins, names):
        scenario = resolve_scenario(name, plugins.scenario_dirs).with_overrides(**overrides)
        check_against_data(scenario, plugins)
        loaded[scenario.name] = scenario
    return loaded


def parse_sweep(items) -> dict[str, list[int]]:
    """['batch_size=1,32', 'threads=1,2'] -> {'batch_size': [1, 32], 'threads': [1, 2]}."""
    from dlbench.run.suite import SWEEP_KEYS

    sweep: dict[str, list[int]] = {}
    for item in items:
        key, _, values = item.partition("=")
        if key not in SWEEP_KEYS:
            raise InputError(f"unknown sweep key {key!r}; {one_of(SWEEP_KEYS)}", field="--sweep")
        try:
            numbers = [int(v) for v in values.split(",")]
        except ValueError:
            numbers = []
        lowest = 0 if key == "seed" else 1
        if not numbers or min(numbers) < lowest:
            kind = "non-negative" if key == "seed" else "positive"
            raise InputError(f"{item!r}: expected {key}=N[,N...] with {kind} integers", field="--sweep")
        sweep[key] = list(dict.fromkeys(numbers))
    return sweep


def parse_backend_options(items, backends: list[str], plugins: Plugins) -> dict[str, dict]:
    """['torch.compile=true', 'jax.scan=false'] -> {'torch': {'compile': True}, 'jax': {'scan': False}}."""
    options: dict[str, dict] = {}
    for item in items:
        name, _, rest = item.partition(".")
        key, eq, text = rest.partition("=")
        if not (name and key and eq):
            raise InputError(f"{item!r}: expected BACKEND.KEY=VALUE, e.g. torch.compile=true",
                             field="--backend-option")
        if name not in backends:
            raise InputError(f"{item!r}: backend {name!r} is not in this run; {one_of(backends)}",
                             field="--backend-option")
        options.setdefault(name, {})[key] = _option_value(text)
    for name, given in options.items():
        plugins.backends[name].check_options(given)
    return options


def _option_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


@dataclass
class RunSettings:
    """Everything that decides which jobs a run has; stored in the result document."""

    scenarios: dict  # name -> shipped name or file
    backends: list
    overrides: dict
    device: str = "cpu"
    threads: int = 1
    repeat: int = 1
    timeout: float | None = None
    precision: str = "fp32"
    deterministic: bool = False
    backend_options: dict = field(default_factory=dict)
    sweep: dict = field(default_factory=dict)
    isolation: str = "process"
    max_memory_mib: int | None = None
    scenario_digests: dict = field(default_factory=dict)  # name -> digest of the file as the run began

    def jobs(self):
        from dlbench.run.suite import plan_jobs

        jobs = plan_jobs(self.scenarios, self.backends, self.sweep, self.overrides, self.threads,
                         self.scenario_digests, device=self.device, precision=self.precision,
                         deterministic=self.deterministic, max_memory_mib=self.max_memory_mib)
        return [_with_options(job, self.backend_options) for job in jobs]


def run(*, scenarios, backends: str, overrides: dict, device: str, threads: int | None, repeat: int,
        sweep, precision: str, deterministic: bool, backend_options, timeout: float | None,
        max_memory_mib: int | None, in_process: bool, fmt: str, out_dir: Path) -> int:
    from dlbench.run import environment
    from dlbench.results import store, document as results
    plugins = get_plugins()
    for plugin, error in plugins.load_errors.items():
        print(f"dlbench: warning: plugin {plugin!r} failed to load and is skipped: {error}", file=sys.stderr)
    names, explicit = select_backends(plugins, backends)
    if explicit:
        for name in names:
            availability = plugins.backends[name].availability()
            if not availability.available:
                raise InputError(f"backend {name!r} is unavailable: {availability.reason}", field="--backend")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    loaded = load_scenarios(plugins, scenarios, overrides)
    settings = RunSettings(
        scenarios={n: s.path or n for n, s in loaded.items()}, backends=names, overrides=overrides,
        scenario_digests={n: s.digest for n, s in loaded.items()},
        device=device, threads=threads or environment.available_cores(), repeat=repeat, timeout=timeout,
        precision=precision, deterministic=deterministic, sweep=parse_sweep(sweep),
        backend_options=parse_backend_options(backend_options, names, plugins),
        isolation="in-process" if in_process else "process", max_memory_mib=max_memory_mib)
    out_dir = results.check_writable(out_dir)
    document = results.new_document(_environment(settings.threads), dataclasses.asdict(settings),
                                    ["dlbench", *sys.argv[1:]])
    path = store.store_path(out_dir, document)
    return _execute(settings.jobs(), settings, document, path, fmt)


def resume(path: Path, fmt: str) -> int:
    """Run the jobs of a stopped run that have no finished row, into the same document."""
    from dlbench.results import document as results
    document = results.read_document(path)
    try:
        settings = RunSettings(**document["settings"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"cannot resume: the document has no usable settings ({exc})", source=str(path)) from None
    load_scenarios(get_plugins(), list(settings.scenarios.values()), settings.overrides)
    document["results"] = [r for r in document["results"] if r["status"] != "interrupted"]
    done = {_cell(r["scenario"], r["backend"], r.get("sweep_point")) for r in document["results"]}
    jobs = [j for j in settings.jobs() if _cell(j.request.name, j.request.backend, j.sweep_point) not in done]
    return _execute(jobs, settings, document, Path(path), fmt)


def _cell(scenario: str, backend: str, point) -> tuple:
    return scenario, backend, json.dumps(point or {}, sort_keys=True)


def _environment(threads: int) -> dict:
    from dlbench.run import environment, peak

    env = environment.collect(get_plugins().backend_distributions())
    env["peak_gflops"] = peak.peaks_for_run(env, threads)
    return env


def _execute(jobs, settings: RunSettings, document: dict, path: Path, fmt: str) -> int:
    from dlbench.report import render as report_formats
    from dlbench.results import document as results
    from dlbench.run.suite import Suite, Terminated

    document["path"] = str(path)
    peaks = document["environment"].get("peak_gflops") or {}
    suite = Suite(jobs, document, path, repeat=settings.repeat, timeout=settings.timeout,
                  in_process=settings.isolation == "in-process", peak_gflops=max(peaks.values(), default=None))
    suite.save()  # the reserved file holds a valid document from the start
    try:
        suite.run() if fmt == "json" or not jobs else _run_with_progress(suite)
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        print(f"dlbench: {'terminated' if terminated else 'interrupted'}; finished rows kept in {path}",
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    suite.save()
    if fmt == "json" or suite.save_error:  # a document that could not be stored is not lost: it is printed
        sys.stdout.write(results.dumps(document) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(report_formats.markdown_table(document))
    else:
        _print_table(document, path)
    if suite.save_error:
        print(f"dlbench: error: the result document could not be written to {path} ({suite.save_error}); "
              "it was printed on standard output instead", file=sys.stderr)
        return EXIT_FAILED
    return exit_code(document)


def _with_options(job, extra: dict):
    options = extra.get(job.request.backend)
    if not options:
        return job
    return dataclasses.replace(job, request=dataclasses.replace(job.request, backend_options=options))


def exit_code(document: dict) -> int:
    rows = document["results"]
    bad = any(r["status"] not in ("ok", "unavailable") for r in rows)
    disagree = any(r.get("parity") and not r["parity"]["agrees"] for r in rows)
    return 1 if bad or disagree else 0


def _run_with_progress(suite) -> None:
    from rich.console import Console

    console = Console(stderr=True, log_path=False)
    total = len(suite.jobs)
    with console.status("") as status:
        done = 0

        def on_row(row):
            nonlocal done
            done += 1
            console.log(f"[{done}/{total}] {row['scenario']} / {row['backend']}: {row['status']}")
            if done < total:
                status.update(_describe(suite.jobs[done]))

        status.update(_describe(suite.jobs[0]))
        suite.on_row = on_row
        suite.run()


def _describe(job) -> str:
    point = ", ".join(f"{k}={v}" for k, v in job.sweep_point.items())
    return f"training {job.request.name} on {job.request.backend}{' (' + point + ')' if point else ''} ..."


def _print_table(document: dict, path: Path) -> None:
    from dlbench.report import model as report, render as report_formats
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
        for name, path in scenario_files(plugins.scenario_dirs).items():
            scenario = resolve_scenario(str(path))
            table.add_row(name, scenario.data_name, scenario.description)
        console.print(table)
    if "datasets" in what:
        table = Table(title="datasets", title_justify="left")
        for col in ("name", "options", "description"):
            table.add_column(col)
        for name, info in plugins.datasets.items():
            table.add_row(name, ", ".join(f"{k}={v}" for k, v in info.defaults.items()), info.description)
        console.print(table)


def measure_peaks(threads: int | None, libraries: list[str]) -> dict[str, float | None]:
    """Measure and cache the fp32 matmul ceiling of each available library."""
    from rich.table import Table

    from dlbench.run import environment, peak

    threads = threads or environment.available_cores()
    env = environment.collect(get_plugins().backend_distributions())
    peaks = {}
    for library in libraries:
        if library not in peak.LIBRARIES:
            raise InputError(f"unknown library {library!r}; {one_of(peak.LIBRARIES)}", field="--library")
        peaks[library] = peak.measure(library, threads) if library in peak.available_libraries() else None
    peak.save(env, threads, {k: v for k, v in peaks.items() if v})
    table = Table(title=f"fp32 matmul peak, {threads} threads, {env['cpu']}", title_justify="left")
    table.add_column("library")
    table.add_column("GFLOP/s", justify="right")
    for library, value in peaks.items():
        table.add_row(library, "-" if value is None else f"{value:,.1f}")
    out = _console()
    out.print(table)
    out.print(f"saved to {peak.cache_path()}", highlight=False)
    return peaks
