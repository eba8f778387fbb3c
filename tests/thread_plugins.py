"""A third-party backend with its own thread variable, registered in worker
processes through ``DLBENCH_PLUGINS=thread_plugins``: the runner must take its
thread environment from this class, as it does for the built-ins, and
``dlbench peak`` must measure its own matmul in that environment."""

import os

import numpy as np

import dlbench
from dlbench_backends.numpy import NumpyBackend


class OwnThreadsBackend(NumpyBackend):
    name = "ownthreads"

    def thread_environment(self, threads: int, device: str) -> dict[str, str]:
        return {**super().thread_environment(threads, device), "OWN_FRAMEWORK_THREADS": str(10 * threads)}

    def configure_threads(self, threads: int) -> int:
        """What the framework would run with: the variable its class asked for."""
        return int(os.environ.get("OWN_FRAMEWORK_THREADS", "-1"))

    def matmul(self, n: int):
        """Its framework's product, which (like a real framework) needs its thread variable set."""
        if "OWN_FRAMEWORK_THREADS" not in os.environ:
            raise RuntimeError("OWN_FRAMEWORK_THREADS is not set: not measured in this backend's environment")
        a = np.ones((n, n), np.float32)
        return lambda: a @ a


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(OwnThreadsBackend)
