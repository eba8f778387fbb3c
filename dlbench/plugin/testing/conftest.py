"""A kit run (``pytest --pyargs dlbench.plugin.testing --dlbench-backend NAME``):
the backends picked, one thread per pool, the ``backend`` /
``compared_backend`` fixtures, and what a backend does not implement
skipped with the reason (see :mod:`dlbench.plugin.testing.fixtures`)."""

from dlbench.plugin.testing.fixtures import (also_imported, backend, compared_backend, data_cache,  # noqa: F401
                                             gpu_refusals,
                                             pin_thread_pools, pytest_generate_tests, restore_process_settings,
                                             selected_backends)
from dlbench.plugin.testing.fixtures import skip_what_is_not_implemented as pytest_pyfunc_call  # noqa: F401


def pytest_configure(config):
    pin_thread_pools(selected_backends(config))
