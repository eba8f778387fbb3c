import importlib.metadata
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import dlbench
from dlbench.plugin import hookspecs
from dlbench.plugin.backend import Backend, TrainerOptions
from dlbench.network.init import initial_weights
from dlbench.plugin.manager import PluginError, load_plugins
from dlbench.measure import peak
from dlbench.scenario import resolve_scenario

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "backends" / "write-a-backend.md"


def readme_plugin_example() -> types.ModuleType:
    """The worked example of the docs' 'Write a backend' tutorial, as a module."""
    text = TUTORIAL.read_text()
    section = text.split("## 2. A worked example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("readme_plugin")
    exec(compile(code, str(TUTORIAL), "exec"), module.__dict__)
    return module


def test_every_hook_is_documented_with_an_example():
    hooks = [name for name in dir(hookspecs) if name.startswith("dlbench_")]
    assert hooks, "no hooks found"
    for name in hooks:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Example::" in doc and "@dlbench.hookimpl" in doc, name


BUILTIN_ORDER = ["numpy", "torch", "tensorflow", "jax"]


def builtin_entry_points() -> list[str]:
    """The backends the dlbench distribution itself publishes, in its metadata's order."""
    return [ep.name for ep in importlib.metadata.distribution("dlbench").entry_points if ep.group == "dlbench.backends"]


def test_builtin_backends_are_dlbenchs_own_entry_points_loaded_reference_first():
    plugins = load_plugins()
    names = builtin_entry_points()
    assert sorted(names) == sorted(BUILTIN_ORDER)
    assert not {name: plugins.load_errors[name] for name in names if name in plugins.load_errors}
    assert list(plugins.backends)[:4] == BUILTIN_ORDER  # whatever order the metadata lists them in
    assert all(plugins.backend_plugin[name] == name and plugins.distributions[name] == "dlbench" for name in names)


@pytest.fixture
def third_party_distribution(tmp_path, monkeypatch):
    """An installed distribution, found before dlbench on the path, whose entry point is thread_plugins."""
    info = tmp_path / "ownthreads_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ownthreads-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dlbench.backends]\nownthreads = thread_plugins\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "ownthreads-plugin"


def test_third_party_entry_points_come_after_the_builtins_and_only_with_autoload(third_party_distribution,
                                                                                monkeypatch):
    plugins = load_plugins()
    assert list(plugins.backends)[:4] == BUILTIN_ORDER and "ownthreads" in list(plugins.backends)[4:]
    assert plugins.distributions["ownthreads"] == third_party_distribution
    monkeypatch.setenv("DLBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugins = load_plugins()
    assert "ownthreads" not in plugins.backends
    assert list(plugins.backends) == BUILTIN_ORDER  # dlbench's own entry points still load


def test_readme_example_plugin_registers_and_trains_like_numpy():
    plugins = load_plugins(extra=(readme_plugin_example(),))
    backend = plugins.backends["numpy64"]
    assert backend.availability().available
    spec = resolve_scenario("digits-mlp").model
    data = plugins.dataset("digits").load(0, {})
    weights = initial_weights(spec, 0)
    indices = np.arange(5 * 32).reshape(5, 32)
    ours = backend.build(spec, weights, TrainerOptions())
    ref = plugins.backends["numpy"].build(spec, weights, TrainerOptions())
    for trainer in (ours, ref):
        trainer.place_data(data)
    np.testing.assert_allclose(ours.train(indices), ref.train(indices), rtol=1e-4)
    assert ours.evaluate()[1] == pytest.approx(ref.evaluate()[1], abs=0.01)


def test_blocked_plugins_are_not_registered(monkeypatch):
    monkeypatch.setenv("DLBENCH_BLOCK_PLUGINS", "torch, jax")
    plugins = load_plugins()
    assert "torch" not in plugins.backends and "jax" not in plugins.backends
    assert "numpy" in plugins.backends


def test_plugin_registering_a_duplicate_name_is_reported_by_name():
    class Clash(Backend):
        name = "numpy"

        def build(self, spec, weights, options):
            raise NotImplementedError

    class Plugin:
        @dlbench.hookimpl
        def dlbench_register_backends(self, registry):
            registry.add(Clash)

    with pytest.raises(PluginError, match="registered backend 'numpy', which plugin 'numpy' already registered"):
        load_plugins(extra=(Plugin(),))


def test_plugin_registering_a_non_backend_is_reported_by_name():
    class Plugin:
        @dlbench.hookimpl
        def dlbench_register_backends(self, registry):
            registry.add("not a class")

    with pytest.raises(PluginError, match="expected a subclass of dlbench.plugin.backend.Backend"):
        load_plugins(extra=(Plugin(),))


def test_plugin_named_in_the_environment_runs_through_the_cli(tmp_path):
    """A plugin module on the path, named in DLBENCH_PLUGINS, is used by the isolated workers too."""
    source = TUTORIAL.read_text().split("## 2. A worked example", 1)[1]
    code = re.search(r"```python\n(.*?)```", source, re.S).group(1)
    (tmp_path / "numpy64_plugin.py").write_text(code)
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path), "DLBENCH_PLUGINS": "numpy64_plugin"}
    out = subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--scenario", "xor-mlp", "--backend",
                          "numpy,numpy64", "--steps", "50", "--format", "json", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = __import__("json").loads(out.stdout)
    rows = {r["backend"]: r for r in doc["results"]}
    assert rows["numpy64"]["status"] == "ok"
    assert rows["numpy64"]["parity"]["agrees"]


def test_third_party_backend_gets_its_thread_environment_from_its_own_class(tmp_path):
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1]), "DLBENCH_PLUGINS": "thread_plugins"}
    out = subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--scenario", "xor-mlp", "--backend",
                          "ownthreads", "--threads", "2", "--steps", "3", "--format", "json", "--out",
                          str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    (row,) = __import__("json").loads(out.stdout)["results"]
    assert row["threads"] == 20  # OWN_FRAMEWORK_THREADS, set by the runner from the plugin's class


def test_peak_measures_each_matmul_implementation_once():
    import mutant_plugins
    import thread_plugins

    plugins = load_plugins(extra=(mutant_plugins, thread_plugins))
    available = [name for name in BUILTIN_ORDER if plugins.backends[name].availability().available]
    # installed third-party backends (the paddle plugin where CI installs it) come after the built-ins
    installed = [name for name, backend in load_plugins().backends.items()
                 if name not in BUILTIN_ORDER and backend.availability().available]
    # the mutants inherit NumPy's matmul: measured once, as numpy; ownthreads has its own
    assert peak.measurable_backends(plugins) == [*available, *installed, "ownthreads"]


def test_third_party_backend_is_measured_by_dlbench_peak_in_its_own_thread_environment(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "DLBENCH_PLUGINS": "thread_plugins",
           "DLBENCH_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "dlbench.cli", "peak", "--backend", "ownthreads", "--threads", "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    (row,) = [line for line in out.stdout.splitlines() if "ownthreads" in line]
    assert re.search(r"\d\.\d", row), out.stdout  # a GFLOP/s figure, not '-'
    (measured,) = json.loads((tmp_path / "peak.json").read_text()).values()
    assert measured["ownthreads"]["gflops"] > 0
    assert measured["ownthreads"]["load"] >= 0  # the load it was measured at, judged by later runs


def _fake_measurements(monkeypatch, tmp_path, gflops: float, load: float) -> list:
    """peak.measure returns ``gflops`` (and records its calls) at a load of ``load`` per core."""
    calls = []
    monkeypatch.setenv("DLBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(peak, "measure",
                        lambda name, threads, dtype="float32", device="cpu": calls.append(name) or gflops)
    monkeypatch.setattr(peak, "load_average", lambda: load)
    return calls


def test_a_peak_measured_on_a_busy_machine_is_measured_again_by_a_run_on_a_quiet_one(monkeypatch, tmp_path):
    env = {"cpu": "test cpu", "logical_cores": 2}
    calls = _fake_measurements(monkeypatch, tmp_path, gflops=60.0, load=1.0)
    busy = peak.peaks_for_run(env, 2)
    assert set(busy.values()) == {60.0} and calls  # measured busy: the best there is now
    calls.clear()
    assert peak.peaks_for_run(env, 2) == busy and not calls  # busy again: the cached figures, not re-measured
    calls = _fake_measurements(monkeypatch, tmp_path, gflops=190.0, load=0.0)
    quiet = peak.peaks_for_run(env, 2)
    assert sorted(calls) == sorted(busy) and set(quiet.values()) == {190.0}
    calls.clear()
    assert peak.peaks_for_run(env, 2) == quiet and not calls  # a quiet figure is kept


def test_each_compute_dtype_has_its_own_cached_peak(monkeypatch, tmp_path):
    env = {"cpu": "test cpu", "logical_cores": 2}
    _fake_measurements(monkeypatch, tmp_path, gflops=100.0, load=0.0)
    fp32 = peak.peaks_for_run(env, 2)
    _fake_measurements(monkeypatch, tmp_path, gflops=400.0, load=0.0)
    bf16 = peak.peaks_for_run(env, 2, "bfloat16")
    assert set(fp32.values()) == {100.0} and set(bf16.values()) == {400.0}
    assert peak.load_cached(env, 2) == fp32 and peak.load_cached(env, 2, dtype="bfloat16") == bf16


def test_a_peak_cached_without_its_load_is_measured_again_on_a_quiet_machine(monkeypatch, tmp_path):
    env = {"cpu": "test cpu", "logical_cores": 2}
    (tmp_path / "peak.json").write_text(json.dumps({peak.machine_key(env, 2): {"numpy": 60.0}}))  # the old format
    calls = _fake_measurements(monkeypatch, tmp_path, gflops=190.0, load=0.0)
    assert peak.peaks_for_run(env, 2)["numpy"] == 190.0 and "numpy" in calls
