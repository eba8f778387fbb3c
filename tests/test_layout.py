"""The tree is the architecture: subpackages per concern, imports that only go one way."""

import ast
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


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_is_grouped_into_subpackages_per_concern():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {"spec", "data", "plugin", "run", "results", "report", "cli"} <= packages
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py", "errors.py", "pytest_plugin.py",
                                                        "scenario.py"]
