"""A test-only backend that computes float32 as a GPU's tensor cores do at tf32:
the NumPy backend with every matmul and convolution operand rounded to TF32
(its ``tf32`` option), whatever the run's precision. The parity certificate
must accept it at tf32 and reject it at fp32 (``tests/run/test_gpu_paths.py``)."""

import dataclasses

import dlbench
from dlbench_backends.numpy import NumpyBackend


class TensorCores(NumpyBackend):
    name = "numpy-tensor-cores"
    description = "test-only: NumPy with TF32 matmul operands, as tensor cores"
    order = 90

    def build(self, spec, weights, options):
        return super().build(spec, weights, dataclasses.replace(options, extra={**options.extra, "tf32": True}))


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(TensorCores)
