"""Test-only backends that fail in every way a real one can. Registered in
worker processes through ``DLBENCH_PLUGINS=fault_plugins``."""

import os
import signal
import time
from dataclasses import replace

import numpy as np

import dlbench
from dlbench.plugin.backend import Backend
from dlbench_backends.numpy import NumpyBackend
from dlbench_backends.numpy.trainer import NumpyTrainer


class HangingTrainer(NumpyTrainer):
    def train(self, indices):
        time.sleep(3600)


class ExitingTrainer(NumpyTrainer):
    """Exits with code 3; with FAULT_STDERR_LINE=N, after writing one line of N characters to standard error."""

    def train(self, indices):
        print("fault_plugins: about to exit with code 3", file=__import__("sys").stderr, flush=True)
        if os.environ.get("FAULT_STDERR_LINE"):
            print("x" * int(os.environ["FAULT_STDERR_LINE"]), file=__import__("sys").stderr, flush=True)
        os._exit(3)


class KilledTrainer(NumpyTrainer):
    def train(self, indices):
        os.kill(os.getpid(), signal.SIGKILL)


class DivergingTrainer(NumpyTrainer):
    """The loss becomes NaN at step 10."""

    steps = 0

    def train(self, indices):
        losses = super().train(indices)
        first, self.steps = self.steps, self.steps + len(losses)
        if first <= 10 < self.steps:
            losses[10 - first] = np.nan
        return losses


class GarbageTrainer(NumpyTrainer):
    """Writes something that is not a row where the worker's result goes, then exits cleanly."""

    def train(self, indices):
        with open(__import__("sys").argv[2], "w") as f:
            f.write('{"x": 1}' if os.environ.get("GARBAGE") == "json" else "garbage, not JSON")
        os._exit(0)


def backend(backend_name: str, trainer_class=None, error: Exception | None = None):
    class FaultBackend(Backend):
        name = backend_name
        description = f"test-only: {backend_name}"

        def build(self, spec, weights, options):
            if error is not None:
                raise error
            return trainer_class(spec, weights, replace(options, extra=NumpyBackend.check_options(options.extra)))

    return FaultBackend


FAULTS = [
    backend("hang", HangingTrainer),
    backend("exit", ExitingTrainer),
    backend("killed", KilledTrainer),
    backend("diverge", DivergingTrainer),
    backend("garbage", GarbageTrainer),
    backend("raise", error=RuntimeError("simulated failure while building")),
]


@dlbench.hookimpl
def dlbench_register_backends(registry):
    for cls in FAULTS:
        registry.add(cls)


class MissingFrameworkBackend(Backend):
    name = "missing"
    module = "no_such_framework_for_dlbench"
    pip_install = 'pip install "no-such-framework"'
    description = "test-only: its framework is not installed"

    def build(self, spec, weights, options):
        raise AssertionError("never built: it is unavailable")


FAULTS.append(MissingFrameworkBackend)


class HoggingTrainer(NumpyTrainer):
    def train(self, indices):
        # 3 GiB: fits this machine (so only --max-memory can make it fail), not a 2 GiB address space
        hog = np.ones((3, 2**30), np.uint8)
        return super().train(indices) + hog[0, 0]


FAULTS.append(backend("hog", HoggingTrainer))
