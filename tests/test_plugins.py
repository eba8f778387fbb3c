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
from dlbench.spec.init import initial_weights
from dlbench.plugin.manager import BUILTIN_PLUGINS, PluginError, load_plugins
from dlbench.scenario import resolve_scenario

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_plugin_example() -> types.ModuleType:
    """The worked example of README.md's 'Writing a backend plugin', as a module."""
    text = README.read_text()
    section = text.split("## Writing a backend plugin", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("readme_plugin")
    exec(compile(code, str(README), "exec"), module.__dict__)
    return module


def test_every_hook_is_documented_with_an_example():
    hooks = [name for name in dir(hookspecs) if name.startswith("dlbench_")]
    assert hooks, "no hooks found"
    for name in hooks:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Example::" in doc and "@dlbench.hookimpl" in doc, name


def test_builtin_backends_are_registered_under_their_entry_point_names():
    plugins = load_plugins()
    assert list(plugins.backends)[:1] == ["numpy"]
    assert not {name: plugins.load_errors[name] for name in BUILTIN_PLUGINS if name in plugins.load_errors}
    assert set(BUILTIN_PLUGINS) <= set(plugins.backends)
    assert plugins.backend_plugin["numpy"] == "numpy"
    assert plugins.distributions["numpy"] == "dlbench"


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
    source = README.read_text().split("## Writing a backend plugin", 1)[1]
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
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parent), "DLBENCH_PLUGINS": "thread_plugins"}
    out = subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--scenario", "xor-mlp", "--backend",
                          "ownthreads", "--threads", "2", "--steps", "3", "--format", "json", "--out",
                          str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    (row,) = __import__("json").loads(out.stdout)["results"]
    assert row["threads"] == 20  # OWN_FRAMEWORK_THREADS, set by the runner from the plugin's class
