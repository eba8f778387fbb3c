"""One run's settings are one value: its defaults are written once, the CLI and
the Python API take theirs from it, a parameter reaches the trainer through
it, and ``--resume`` rebuilds the same value."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import dlbench
from dlbench.cli import main
from dlbench.network.precision import PRECISIONS
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.distributed import SCALINGS, DataParallel
from dlbench.plugin.manager import get_plugins
from dlbench.results.document import write_document
from dlbench.run import checks, runner, settings as run_settings
from dlbench.run.settings import OPTION_DEFAULTS, RunSettings, option_default
from dlbench.scale.cluster import EXECUTORS

CORE = Path(dlbench.__file__).parent
#: the modules a run's settings pass through, from the front ends to the trainer's options
SETTINGS_PATH = [CORE / "api.py", CORE / "cli", CORE / "run", CORE / "scale", CORE / "parity",
                 CORE / "plugin" / "distributed.py"]
#: the main settings (the names their defaults are written under) and their default values
MAIN_SETTINGS = {("precision",): "fp32", ("device",): "cpu", ("mode",): "train", ("scaling",): "strong",
                 ("executor",): "local", ("backends",): "all", ("repeat",): 1, ("data_parallel", "replicas"): 1,
                 ("isolation",): "process"}


def python_files(paths: list[Path]) -> list[Path]:
    return sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*.py")))


def named_defaults(tree: ast.AST):
    """(name, value node) of every default written in ``tree``: a parameter's,
    a class field's, a dict entry's, a ``dict(...)`` keyword's, a click option's."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            positional = node.args.posonlyargs + node.args.args
            yield from zip([a.arg for a in positional[len(positional) - len(node.args.defaults):]],
                           node.args.defaults)
            yield from ((a.arg, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            yield node.target.id, node.value
        elif isinstance(node, ast.Dict):
            yield from ((k.value, v) for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant))
        elif isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called == "dict":
                yield from ((k.arg, k.value) for k in node.keywords if k.arg)
            flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if called == "option" and flags:
                name = flags[-1] if not flags[-1].startswith("-") else flags[0].lstrip("-").replace("-", "_")
                yield from ((name, k.value) for k in node.keywords if k.arg == "default")


def literal_default_sites(files: list[Path]) -> dict[tuple, list[str]]:
    """Per main setting, where its default value is written as a literal."""
    sites: dict[tuple, list[str]] = {names: [] for names in MAIN_SETTINGS}
    for path in files:
        for name, value in named_defaults(ast.parse(path.read_text())):
            for names, default in MAIN_SETTINGS.items():
                if (name in names and isinstance(value, ast.Constant) and type(value.value) is type(default)
                        and value.value == default):
                    sites[names].append(f"{path}:{value.lineno}")
    return sites


def test_each_main_setting_s_default_is_written_once_on_its_way_to_the_trainer():
    sites = literal_default_sites(python_files(SETTINGS_PATH))
    duplicated = {names[0]: where for names, where in sites.items() if len(where) > 1}
    assert duplicated == {}
    for names, default in MAIN_SETTINGS.items():  # and that one definition is the value every front end takes
        name = names[0]
        value = getattr(RunSettings, name, None) if name == "isolation" else option_default(name)
        assert value == default, name


def test_the_defaults_finder_finds_a_default_written_twice(tmp_path):
    (tmp_path / "front.py").write_text('def benchmark(*, precision: str = "fp32", mode="train"): ...\n'
                                       'DEFAULTS = dict(precision="fp32")\n'
                                       '@click.option("--scaling", default="strong")\ndef run(): ...\n')
    (tmp_path / "value.py").write_text('class S:\n    precision: str = "fp32"\n    replicas: int = 1\n'
                                       'OPTIONS = {"data_parallel": 1, "precision": "bf16"}\n')
    sites = literal_default_sites(python_files([tmp_path]))
    assert [len(sites[names]) for names in [("precision",), ("mode",), ("scaling",), ("data_parallel", "replicas")]
            ] == [3, 1, 1, 2]


def test_the_precision_default_is_spelled_only_where_the_precisions_are_defined():
    for path in python_files(SETTINGS_PATH):
        assert '"fp32"' not in path.read_text(), path
    assert PRECISIONS[0] == "fp32" and TrainerOptions().precision == RunSettings.precision
    assert TrainerOptions().device == RunSettings.device


def precision_fallback_sites(files: list[Path]) -> list[str]:
    """Where a module writes the precision's default value itself: a parameter's or a field's default,
    or a fallback after ``or`` (``row.get("precision") or "fp32"``, ``policy or Policy("fp32")``)."""
    def is_default(node) -> bool:
        return isinstance(node, ast.Constant) and node.value == PRECISIONS[0]

    def lines(node) -> list[int]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return [d.lineno for d in node.args.defaults + node.args.kw_defaults if is_default(d)]
        if isinstance(node, ast.AnnAssign) and is_default(node.value):
            return [node.value.lineno]
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):  # the fallback, or inside it
            return [c.lineno for value in node.values[1:] for c in ast.walk(value) if is_default(c)]
        return []

    return sorted({f"{path}:{line}" for path in files for node in ast.walk(ast.parse(path.read_text()))
                   for line in lines(node)})


def test_no_module_falls_back_to_a_precision_of_its_own():
    """The core, the built-in backends and the shipped plugins take the precision's default from
    ``PRECISIONS`` (its first), where the precisions are defined, never spelled again."""
    defined_at = CORE / "network" / "precision.py"
    files = [f for f in python_files([CORE, CORE.parent / "backends", CORE.parent / "plugins"]) if f != defined_at]
    assert precision_fallback_sites(files) == []


def test_the_precision_fallback_finder_finds_defaults_and_fallbacks(tmp_path):
    (tmp_path / "m.py").write_text('def build(spec, precision="fp32"): ...\n'
                                   'class T:\n    precision: str = "fp32"\n'
                                   'key = row.get("precision") or "fp32"\n'
                                   'policy = given or Policy("fp32")\n'
                                   'same = precision == "fp32"\n'
                                   'class B:\n    precisions: tuple = ("fp32", "tf32")\n')
    assert [site.rsplit(":", 1)[1] for site in precision_fallback_sites([tmp_path / "m.py"])] == ["1", "3", "4", "5"]


def run_command_params() -> dict[str, click.Parameter]:
    return {p.name: p for p in main.commands["run"].params}


def test_every_run_option_takes_its_default_and_choices_from_the_settings():
    params = run_command_params()
    for name, default in OPTION_DEFAULTS.items():
        if name in ("sources", "weights_files"):  # given only in Python (a model's origin, its weights)
            continue
        assert params[name].default == default, name
    assert list(params["precision"].type.choices) == list(PRECISIONS)
    assert list(params["device"].type.choices) == list(checks.DEVICES)
    assert list(params["scaling"].type.choices) == list(SCALINGS)
    assert list(params["executor"].type.choices) == list(EXECUTORS)
    assert set(OPTION_DEFAULTS) - {"sources", "weights_files"} <= set(params)


def test_a_changed_settings_default_changes_the_click_option(monkeypatch):
    from dlbench.cli import options

    monkeypatch.setitem(run_settings.OPTION_DEFAULTS, "precision", "bf16")
    monkeypatch.setitem(run_settings.OPTION_DEFAULTS, "data_parallel", 4)
    try:
        importlib.reload(options)
        command = click.command()(options.run_options(lambda **kwargs: None))
        params = {p.name: p for p in command.params}
        assert (params["precision"].default, params["data_parallel"].default) == ("bf16", 4)
    finally:
        monkeypatch.undo()
        importlib.reload(options)


def test_the_python_api_takes_its_defaults_from_the_settings():
    parameters = inspect.signature(dlbench.benchmark).parameters
    shared = [name for name in parameters if name in OPTION_DEFAULTS]
    assert len(shared) >= 15
    assert {name: parameters[name].default for name in shared} == {name: OPTION_DEFAULTS[name] for name in shared}


@pytest.fixture
def no_peaks(monkeypatch):
    """A bf16 run's document would measure every backend's bf16 matmul first (a minute and more here)."""
    from dlbench.measure import peak

    monkeypatch.setattr(peak, "peaks_for_run", lambda *args: {})


def test_precision_and_replicas_reach_the_trainer_from_the_click_options_through_one_value(tmp_path, monkeypatch,
                                                                                           no_peaks):
    """--precision and --data-parallel, followed from click to the options the trainer is built with."""
    from dlbench.measure import environment
    from dlbench.run import worker

    built, real_prepare = [], worker.prepare_scenario

    def prepare_scenario(scenario, backend, options, **kwargs):
        built.append(options)
        return real_prepare(scenario, backend, options, **kwargs)

    monkeypatch.setattr(worker, "prepare_scenario", prepare_scenario)
    monkeypatch.setattr(environment, "available_cores", lambda: 4)
    made = []
    real_settings = RunSettings.from_options.__func__
    monkeypatch.setattr(RunSettings, "from_options",
                        classmethod(lambda cls, *a, **k: made.append(real_settings(cls, *a, **k)) or made[-1]))
    result = CliRunner().invoke(main, ["run", "-s", "xor-mlp", "-b", "numpy", "--steps", "2", "--precision", "bf16",
                                       "--data-parallel", "2", "--scaling", "weak", "--threads", "1",
                                       "--in-process", "--format", "json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (settings,) = made
    assert settings.precision == "bf16" and settings.data_parallel == DataParallel(2, "weak")
    (options,) = built
    assert (options.precision, options.data_parallel) == ("bf16", settings.data_parallel)
    assert options.extra == get_plugins().backend("numpy").option_defaults  # filled once, by the settings
    (row,) = json.loads(result.stdout)["results"]
    assert row["precision"] == "bf16" and row["distributed"]["scaling"] == "weak"
    assert row["metrics"]["batch_size"] == 2  # the weak-scaling rule: 2 replicas x the scenario's batch of 1


def resumable_settings(tmp_path) -> RunSettings:
    return RunSettings.from_options(get_plugins(), scenarios=["xor-mlp"], backends="numpy", steps=2,
                                    precision="bf16", sweep=["batch_size=2,4"], threads=1,
                                    backend_options=["numpy.summation=reversed"])


def test_resume_rebuilds_the_same_settings_value_and_jobs(tmp_path, no_peaks):
    settings = resumable_settings(tmp_path)
    assert settings.backend_options == {"numpy": {**get_plugins().backend("numpy").option_defaults,
                                                  "summation": "reversed"}}
    document, path = runner.new_run(settings, tmp_path, ["dlbench", "run"])
    write_document(document, path)
    jobs, resumed, _ = runner.resumable(path)
    assert resumed == settings
    assert [job.request for job in jobs] == [job.request for job in settings.jobs()]


def test_a_stored_settings_value_reads_back_equal_after_json():
    value = RunSettings(scenarios={"s": "s"}, backends=["numpy", "torch"], overrides={"max_steps": 3},
                        data_parallel=DataParallel(4, "weak", True, ("a", "b"), 1, 29400),
                        backend_options={"torch": {"compile": True}})
    stored = json.loads(json.dumps(value.to_document()))
    assert (stored["data_parallel"], stored["scaling"], stored["hosts"], stored["coordinator_port"]) == (
        4, "weak", ["a", "b"], 29400)  # the document's settings keep their keys (no schema change)
    assert RunSettings.from_document(stored) == value
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.precision = "fp16"


def test_a_resumed_document_with_a_bad_backend_option_is_one_clear_line(tmp_path, no_peaks):
    settings = resumable_settings(tmp_path)
    document, path = runner.new_run(settings, tmp_path, ["dlbench", "run"])
    document["settings"]["backend_options"] = {"numpy": {"summation": "sideways"}}
    write_document(document, path)
    result = CliRunner().invoke(main, ["run", "--resume", str(path)])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("dlbench: error: ") and "numpy.summation must be" in line and "sideways" in line


def test_every_job_s_request_is_the_settings_own_fields_at_its_sweep_point():
    settings = RunSettings(scenarios={"s": "s"}, backends=["torch", "numpy"], overrides={}, threads=3,
                           deterministic=True, mode="both", inference_calls=7, max_memory_mib=500,
                           sweep={"data_parallel": [1, 2], "precision": ["fp32", "bf16"]},
                           backend_options={"torch": {"compile": True}, "numpy": {}})
    requests = [job.request for job in settings.jobs()]
    assert [(r.backend, r.data_parallel.replicas, r.precision) for r in requests[:4]] == [
        ("numpy", 1, "fp32"), ("torch", 1, "fp32"), ("numpy", 1, "bf16"), ("torch", 1, "bf16")]
    assert {(r.threads, r.deterministic, r.mode, r.inference_calls, r.max_memory_mib) for r in requests} == {
        (3, True, "both", 7, 500)}
    assert [r.is_reference for r in requests[:2]] == [True, False]
    assert requests[1].backend_options == {"compile": True}
