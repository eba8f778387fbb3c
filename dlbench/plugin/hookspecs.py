"""Every hook a dlbench plugin can implement. Few hooks: plugins add classes
to registries rather than implementing one hook per operation.

A plugin is a module (or object) with ``@dlbench.hookimpl`` functions,
published under the ``dlbench.backends`` entry-point group::

    # pyproject.toml of the plugin's distribution
    [project.entry-points."dlbench.backends"]
    mybackend = "my_package.dlbench_plugin"
"""

import pluggy

hookspec = pluggy.HookspecMarker("dlbench")


@hookspec
def dlbench_register_backends(registry):
    """Add backend classes (subclasses of :class:`dlbench.plugin.backend.Backend`).

    Example::

        @dlbench.hookimpl
        def dlbench_register_backends(registry):
            registry.add(MyBackend)
    """


@hookspec
def dlbench_register_datasets(registry):
    """Add datasets (:class:`dlbench.data.builtin.DatasetInfo`) that scenarios can name.

    Example::

        @dlbench.hookimpl
        def dlbench_register_datasets(registry):
            registry.add(DatasetInfo("mydata", load_mydata, "my data", {"test_fraction": 0.2}))
    """


@hookspec
def dlbench_scenario_dirs():
    """Return a list of folders holding more ``*.toml`` scenario files.

    Example::

        @dlbench.hookimpl
        def dlbench_scenario_dirs():
            return [pathlib.Path(__file__).parent / "scenarios"]
    """
