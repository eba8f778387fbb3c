"""Test-only plugin that breaks the hook contract (registers a non-Backend)."""

import dlbench


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(object)
