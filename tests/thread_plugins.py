"""A third-party backend with its own thread variable, registered in worker
processes through ``DLBENCH_PLUGINS=thread_plugins``: the runner must take its
thread environment from this class, as it does for the built-ins."""

import os

import dlbench
from dlbench_backends.numpy import NumpyBackend


class OwnThreadsBackend(NumpyBackend):
    name = "ownthreads"

    def thread_environment(self, threads: int, device: str) -> dict[str, str]:
        return {**super().thread_environment(threads, device), "OWN_FRAMEWORK_THREADS": str(10 * threads)}

    def configure_threads(self, threads: int) -> int:
        """What the framework would run with: the variable its class asked for."""
        return int(os.environ.get("OWN_FRAMEWORK_THREADS", "-1"))


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(OwnThreadsBackend)
