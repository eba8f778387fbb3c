"""The tree is the architecture: subpackages per concern, imports that only go
one way, a core that names no framework, and backends that all have the same
modules with the same names inside."""

import ast
import importlib
import re
from pathlib import Path

import dlbench

ROOT = Path(dlbench.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path) -> set[str]:
    """The dlbench modules a module imports, at its top or inside a function (a lazy import is still a dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlbench"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("dlbench"))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in module_imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_core_modules_import_each_other_without_cycles():
    graph = import_graph()
    # a package importing its own submodules (re-exports) is not a cycle of concerns
    graph = {name: {m for m in deps if not (m.startswith(name + ".") and name.count(".") == 1 and
                                            Path(ROOT.parent, *name.split("."), "__init__.py").exists())}
             for name, deps in graph.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_every_core_module_imports():
    """A name moved to another module is imported from where it now is (a merge can keep an old import that
    no test of the moved code sees, as the kit's contract suite kept ``parity.verdict.annotate``)."""
    failed = {}
    for name in sorted(n for n in import_graph() if not n.endswith("__main__")):  # a __main__ runs
        try:
            importlib.import_module(name)
        except ImportError as exc:
            failed[name] = str(exc)
    assert failed == {}

def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_is_grouped_into_subpackages_per_concern():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == {name for name in LAYERS if "." not in name and (ROOT / name).is_dir()}
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py", "api.py", "errors.py", "pytest_plugin.py",
                                                        "scenario.py"]


#: the pipeline, bottom up: a module imports only from its own layer or the layers below it
#: (a network spec knows no data, a backend's contract knows no runner, a runner knows no report)
#: (plugin.testing, the contract suite shipped for plugin authors, runs whole pipelines: it comes after them,
#: before the pytest plugin that gives it its option)
LAYERS = ["errors", "network", "data", "scenario", "plugin", "results", "scale", "measure", "parity", "run",
          "report", "cli", "api", "__init__", "plugin.testing", "pytest_plugin"]


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[1:3] == ["plugin", "testing"]:
        return LAYERS.index("plugin.testing")
    return LAYERS.index(parts[1] if len(parts) > 1 else "__init__")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{name} -> {dep}" for name, deps in graph.items() for dep in deps
                  if layer_of(dep) > layer_of(name))


def test_no_module_imports_a_later_stage_of_the_pipeline():
    assert {module.split(".")[1] for module in import_graph() if "." in module} <= set(LAYERS)
    assert upward_imports(import_graph()) == []


def test_upward_import_finder_finds_a_contract_that_imports_the_runner():
    assert upward_imports({"dlbench.plugin.backend": {"dlbench.run.settings", "dlbench.data.base"}}) == [
        "dlbench.plugin.backend -> dlbench.run.settings"]


BACKENDS_ROOT = ROOT.parent / "backends"
#: the modules a backend has only where it needs them: kernels.py where it writes gradients by hand (NumPy:
#: every layer's; JAX: conv, max-pool), convert.py where it reads its framework's own models (Keras, torch),
#: distributed.py where it has a data-parallel engine (torch's DDP, tf.distribute, JAX's Mesh), core.py where
#: the framework must be imported in a particular way (Keras on TensorFlow)
OPTIONAL_BACKEND_MODULES = {"kernels.py", "activations.py",  # maths a backend writes by hand (NumPy)
                            "convert.py", "convert_graph.py", "convert_layers.py", "convert_calls.py",  # a reader
                            "convert_optimizer.py",  # a reader's optimizers
                            "distributed.py", "launch.py",  # a data-parallel engine and its process launcher
                            "core.py"}  # the framework's own import (Keras on TensorFlow)
#: what every backend's module of that name defines, so that they read alike (the module API,
#: docs/backends/module-api.md; tests/backends/test_module_api.py checks their signatures and behaviour)
SHARED_NAMES = {
    "__init__.py": {"dlbench_register_backends"},
    "network.py": {"build_network", "to_canonical", "from_canonical", "Network"},
    "losses.py": {"LOSSES", "categorical_crossentropy", "binary_crossentropy", "mse"},
    "optim.py": {"OPTIMIZERS", "build_optimizer", "SGDUpdate", "AdamUpdate", "RMSpropUpdate", "AdadeltaUpdate"},
    "precision.py": {"LossScaler"},
    "inference.py": {"predict"},
}
#: what every data-parallel engine's distributed.py defines
DISTRIBUTED_NAMES = {"ENGINE", "info"}
FRAMEWORK_IMPORT = re.compile(r"^\s*(import|from) (torch|tensorflow|jax|keras)\b", re.M)


def backend_packages() -> list[Path]:
    return sorted(p.parent for p in BACKENDS_ROOT.glob("*/__init__.py"))


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_every_backend_has_the_same_modules():
    packages = backend_packages()
    assert {p.name for p in packages} == {"numpy", "torch", "tensorflow", "jax"}
    assert sorted(p.name for p in BACKENDS_ROOT.glob("*.py")) == ["__init__.py"], "backend code outside a package"
    modules = {p.name: {m.name for m in p.glob("*.py")} - OPTIONAL_BACKEND_MODULES for p in packages}
    assert all(found == modules["numpy"] for found in modules.values()), modules
    assert modules["numpy"] == {"__init__.py", "network.py", "losses.py", "optim.py", "trainer.py", "sequence.py",
                                "recurrent.py", "transformer.py", "inference.py", "precision.py"}


def test_every_model_reader_defines_the_same_names():
    readers = sorted(BACKENDS_ROOT.glob("*/convert.py"))
    assert {p.parent.name for p in readers} == {"torch", "tensorflow"}
    for path in readers:
        missing = {"reads", "import_model"} - top_level_names(path)
        assert not missing, f"backends/{path.parent.name}/convert.py lacks {sorted(missing)}"


def test_every_backend_module_defines_the_same_names():
    for package in backend_packages():
        for module, names in SHARED_NAMES.items():
            missing = names - top_level_names(package / module)
            assert not missing, f"backends/{package.name}/{module} lacks {sorted(missing)}"


def test_every_data_parallel_engine_is_a_distributed_module_with_the_same_names():
    engines = sorted(BACKENDS_ROOT.glob("*/distributed.py"))
    assert {p.parent.name for p in engines} == {"torch", "tensorflow", "jax"}
    for path in engines:
        missing = DISTRIBUTED_NAMES - top_level_names(path)
        assert not missing, f"backends/{path.parent.name}/distributed.py lacks {sorted(missing)}"


def backend_module_name(path: Path, package: str | None = None) -> str:
    name = package or f"dlbench_backends.{path.parent.name}"
    return name if path.name == "__init__.py" else f"{name}.{path.stem}"


def backend_import_graph(package: Path, name: str | None = None) -> dict[str, set[str]]:
    """The imports between one backend package's modules, at the top or inside a
    function: ``from dlbench_backends.x import name`` is an import of the submodule
    ``name`` when there is one, else of the package (its ``__init__``). ``name``: the
    package's import name (default: a built-in's, ``dlbench_backends.<folder>``)."""
    modules = {backend_module_name(p, name) for p in package.glob("*.py")}
    graph = {}
    for path in package.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                found.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                             for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in modules)
        graph[backend_module_name(path, name)] = found - {backend_module_name(path, name)}
    return graph


#: the backends shipped as distributions of their own (plugins/<distribution>/<package>/)
PLUGIN_PACKAGES = sorted(p.parent for p in (ROOT.parent / "plugins").glob("*/*/__init__.py"))


def test_backend_modules_import_each_other_without_cycles():
    """A backend's package builds its trainer (a lazy import of ``trainer``), so
    no module of it may import the package back (its options come filled in):
    the built-in backends and the backends shipped under plugins/ alike."""
    packages = [(p, None) for p in backend_packages()] + [(p, p.name) for p in PLUGIN_PACKAGES]
    assert [p.name for p in PLUGIN_PACKAGES] == ["dlbench_paddle"]
    for package, name in packages:
        graph = backend_import_graph(package, name)
        assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_backend_import_graph_sees_a_trainer_importing_its_package(tmp_path):
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text("def build():\n    from dlbench_backends.toy.trainer import Trainer\n")
    (package / "trainer.py").write_text("from dlbench_backends.toy import ToyBackend, losses\n")
    (package / "losses.py").write_text("import numpy\n")
    graph = backend_import_graph(package)
    assert graph == {"dlbench_backends.toy": {"dlbench_backends.toy.trainer"}, "dlbench_backends.toy.losses": set(),
                     "dlbench_backends.toy.trainer": {"dlbench_backends.toy", "dlbench_backends.toy.losses"}}
    assert find_cycle(graph) == ["dlbench_backends.toy", "dlbench_backends.toy.trainer", "dlbench_backends.toy"]


def test_the_core_imports_no_framework():
    found = [f"{path.relative_to(ROOT.parent)}: {match.group(0).strip()}" for path in ROOT.rglob("*.py")
             for match in FRAMEWORK_IMPORT.finditer(path.read_text())]
    assert not found, found


def test_framework_import_finder_finds_framework_imports():
    assert FRAMEWORK_IMPORT.search("def f():\n    import torch\n")
    assert FRAMEWORK_IMPORT.search("from jax import lax")
    assert not FRAMEWORK_IMPORT.search("import torchvision_free_name as x\nfrom dlbench import jax_helpers")


TESTS = Path(__file__).parent
#: the test folders that are not a core package's: the backends' contract suite and what is specific to each,
#: the benchmarks, and data (scenario files, published models)
TEST_FOLDERS_OF_THEIR_OWN = {"backends", "benchmarks", "published_models", "scenarios"}


def test_the_tests_mirror_the_packages_and_each_folder_is_on_the_pytest_path():
    """tests/run holds the tests of dlbench/run, and so on; a test module of one folder may import another's helpers
    by bare name (``from test_certificate import run_cell``), so pytest's ``pythonpath`` names every folder."""
    import tomllib

    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    core = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"scenario"}  # scenario.py: one module
    assert folders - TEST_FOLDERS_OF_THEIR_OWN <= core, folders - TEST_FOLDERS_OF_THEIR_OWN - core
    config = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    mirrored = folders - TEST_FOLDERS_OF_THEIR_OWN
    assert set(config["pythonpath"]) == {"tests"} | {f"tests/{name}" for name in mirrored}
