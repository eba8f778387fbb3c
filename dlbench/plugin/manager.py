"""The plugin manager: installed entry points, blocking, the backends' order.

The built-in backends are entry points of the ``dlbench`` distribution
itself, so they are loaded exactly as a third-party backend is, under their
entry-point names. Environment variables:

* ``DLBENCH_DISABLE_PLUGIN_AUTOLOAD=1``: load no third-party entry points
  (dlbench's own still load);
* ``DLBENCH_BLOCK_PLUGINS=a,b``: never register the plugins named a and b;
* ``DLBENCH_PLUGINS=pkg.mod,...``: also register these importable modules
  (as ``PYTEST_PLUGINS`` does; worker processes inherit it).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field

import pluggy

from dlbench.plugin import hookspecs
from dlbench.plugin.backend import Backend
from dlbench.data.builtin import BUILTIN_DATASETS, DatasetInfo
from dlbench.errors import InputError, one_of

ENTRY_POINT_GROUP = "dlbench.backends"
DISABLE_AUTOLOAD_ENV = "DLBENCH_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "DLBENCH_BLOCK_PLUGINS"
EXTRA_PLUGINS_ENV = "DLBENCH_PLUGINS"
OWN_DISTRIBUTION = "dlbench"


class PluginError(Exception):
    """A plugin broke the hook contract; the message names the plugin."""


class Registry:
    """Name -> item, remembering which plugin added each; rejects bad items."""

    def __init__(self, kind: str, check):
        self.kind = kind
        self._check = check
        self.items: dict = {}
        self.origin: dict[str, str] = {}
        self.current_plugin = "?"

    def add(self, item) -> None:
        name = self._check(item, self.current_plugin)
        if name in self.items:
            raise PluginError(f"plugin {self.current_plugin!r} registered {self.kind} {name!r}, "
                              f"which plugin {self.origin[name]!r} already registered")
        self.items[name] = item
        self.origin[name] = self.current_plugin


def _check_backend(item, plugin: str) -> str:
    if not (isinstance(item, type) and issubclass(item, Backend)):
        raise PluginError(f"plugin {plugin!r} registered {item!r} as a backend; "
                          "expected a subclass of dlbench.plugin.backend.Backend")
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin {plugin!r} registered backend class {item.__name__} without a name")
    return name


def _check_dataset(item, plugin: str) -> str:
    if not isinstance(item, DatasetInfo):
        raise PluginError(f"plugin {plugin!r} registered {item!r} as a dataset; "
                          "expected a dlbench.data.builtin.DatasetInfo")
    return item.name


@dataclass
class Plugins:
    manager: pluggy.PluginManager
    backends: dict[str, Backend]
    backend_plugin: dict[str, str]
    datasets: dict[str, DatasetInfo]
    scenario_dirs: list
    distributions: dict[str, str] = field(default_factory=dict)
    load_errors: dict[str, str] = field(default_factory=dict)

    def backend(self, name: str) -> Backend:
        if name not in self.backends:
            raise InputError(f"unknown backend {name!r}; {one_of(self.backends)}", field="--backend")
        return self.backends[name]

    def backend_distributions(self) -> list[str]:
        """Every distribution the registered backends report (for the environment's versions)."""
        return [d for backend in self.backends.values() for d in backend.distributions]

    def dataset(self, name: str) -> DatasetInfo:
        if name not in self.datasets:
            raise InputError(f"unknown dataset {name!r}; {one_of(self.datasets)}", field="data.name")
        return self.datasets[name]


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _register_module(pm, name: str, module: str, origin: str, distributions: dict, errors: dict) -> None:
    if pm.is_blocked(name):
        return
    try:
        plugin = importlib.import_module(module)
    except Exception as exc:  # reported by `dlbench list`; the other plugins still load
        errors[name] = f"{type(exc).__name__}: {exc}"
        return
    pm.register(plugin, name=name)
    distributions[name] = origin


def _entry_points(own: bool) -> list:
    """The ``dlbench.backends`` entry points of dlbench itself (the built-ins)
    or of every other distribution, in the order the metadata lists them."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return [ep for ep in found if (ep.dist is not None and ep.dist.name == OWN_DISTRIBUTION) == own]


def _load_entry_points(pm: pluggy.PluginManager, entry_points: list, distributions: dict, errors: dict) -> None:
    for ep in entry_points:
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name) or ep.name in errors:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not stop the others
            errors[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        pm.register(plugin, name=ep.name)
        distributions[ep.name] = ep.dist.name if ep.dist else "?"


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry) -> dict:
    """Call each plugin's implementation on its own, so errors name the plugin."""
    for impl in getattr(pm.hook, hook_name).get_hookimpls():  # in registration order
        registry.current_plugin = impl.plugin_name
        impl.function(registry)
    return registry.items


def _listing_order(classes: dict, origin: dict, distributions: dict) -> list[str]:
    """Backend names as ``--backend all`` and the reports list them: dlbench's own
    by their ``order`` (the reference first), then every other plugin's in
    registration order (a subclass of a built-in inherits its ``order``, not its place)."""
    def key(name: str) -> tuple[int, int]:
        own = distributions.get(origin[name]) == OWN_DISTRIBUTION
        return (0, classes[name].order) if own else (1, 0)

    return sorted(classes, key=key)


def load_plugins(extra: tuple = ()) -> Plugins:
    """A fresh plugin manager: dlbench's own entry points (the built-ins),
    DLBENCH_PLUGINS, the other entry points, then ``extra``; the backends in
    :func:`_listing_order`."""
    pm = pluggy.PluginManager("dlbench")
    pm.add_hookspecs(hookspecs)
    for name in _env_list(BLOCK_ENV):
        pm.set_blocked(name)
    distributions: dict[str, str] = {}
    errors: dict[str, str] = {}
    _load_entry_points(pm, _entry_points(own=True), distributions, errors)
    for module in _env_list(EXTRA_PLUGINS_ENV):
        _register_module(pm, module, module, f"{EXTRA_PLUGINS_ENV} ({module})", distributions, errors)
    if not os.environ.get(DISABLE_AUTOLOAD_ENV):
        _load_entry_points(pm, _entry_points(own=False), distributions, errors)
    for plugin in extra:
        pm.register(plugin, name=getattr(plugin, "__name__", type(plugin).__name__))
        distributions[pm.get_name(plugin)] = "registered in process"

    backend_registry = Registry("backend", _check_backend)
    backend_classes = _collect(pm, "dlbench_register_backends", backend_registry)
    dataset_registry = Registry("dataset", _check_dataset)
    dataset_registry.current_plugin = "dlbench"
    for info in BUILTIN_DATASETS:
        dataset_registry.add(info)
    datasets = _collect(pm, "dlbench_register_datasets", dataset_registry)
    scenario_dirs = [d for dirs in pm.hook.dlbench_scenario_dirs() for d in dirs]
    return Plugins(
        manager=pm,
        backends={name: backend_classes[name]() for name in _listing_order(backend_classes, backend_registry.origin,
                                                                           distributions)},
        backend_plugin=dict(backend_registry.origin),
        datasets=datasets,
        scenario_dirs=scenario_dirs,
        distributions=distributions,
        load_errors=errors,
    )


@functools.cache
def get_plugins() -> Plugins:
    """The process-wide plugins, loaded once."""
    return load_plugins()
