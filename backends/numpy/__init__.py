"""The from-scratch NumPy backend: forward pass, backpropagation, gradient descent.

Each layer (:mod:`~dlbench_backends.numpy.kernels`) is a small class with
``forward`` and ``backward``. For a Dense layer with input ``X`` (batch, in),
kernel ``W`` (in, out) and bias ``b``:

    forward:   z = X W + b                 (one BLAS matmul)
    backward:  dE/dW = X^T dE/dz,  dE/db = sum_batch dE/dz,  dE/dX = dE/dz W^T

Losses (:mod:`~dlbench_backends.numpy.losses`) return the batch-mean loss and
its gradient with respect to the logits. Optimizers
(:mod:`~dlbench_backends.numpy.optim`) update every parameter in place:
``W <- W - lr * dE/dW`` (see :mod:`dlbench.network` for momentum and Adam).

The modules, the same as every backend's: ``network`` (spec -> layers; the
canonical weights in and out), ``losses``, ``optim``, ``precision`` (how
matmuls round at bf16/fp16, the reference's emulation; fp16's loss scale),
``inference`` (the forward pass in inference mode), ``trainer`` (the Trainer),
with one API (``docs/backends/module-api.md``), and ``kernels``, which every backend keeps for the gradients it
writes by hand instead of taking them from its framework: here that is every
layer's, the textbook part of this backend.

Speed: float32, matmuls through BLAS, no Python loop over samples; all
parameters (and gradients) are views into one flat buffer, so the optimizer
update is a handful of vectorized operations whatever the number of layers;
layers before which nothing is trained skip computing dE/dX, which nobody needs.
Dropout masks come from NumPy's generator seeded with the scenario seed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import dlbench
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions
from dlbench.network import ModelSpec


class NumpyBackend(Backend):
    name = "numpy"
    module = "numpy"
    distributions = ("numpy",)
    pip_install = "pip install numpy"
    description = "from scratch: forward pass, backpropagation and the optimizer in NumPy"
    modes = ("train", "inference")
    order = 0  # the reference: first in every run and report
    precisions = ("fp32", "tf32", "bf16", "fp16")  # tf32 is fp32 on a CPU; bf16/fp16 emulated exactly
    #: dtype "float64", summation "reversed" or "blocked3/4/16" and (at bf16/fp16) rounding "results"
    #: or "outputs" give the parity certificate its yardsticks: exact arithmetic,
    #: the same float32 sums in other orders, and what the frameworks store in
    #: bf16/fp16 (see :class:`~dlbench_backends.numpy.precision.Arithmetic`); tf32 true
    #: rounds every matmul operand of an fp32/tf32 run to TF32, as a GPU's tensor cores
    option_defaults = {"dtype": "float32", "summation": "forward", "rounding": "operands", "tf32": False}
    option_choices = {"dtype": ("float32", "float64"),
                      "summation": ("forward", "reversed", "blocked3", "blocked4", "blocked16"),
                      "rounding": ("operands", "results", "outputs")}

    def matmul(self, n: int, dtype: str = "float32", device: str = "cpu"):
        if dtype != "float32" or device != "cpu":  # NumPy has no bf16/fp16 BLAS: its mixed precision emulates the rounding in float32
            return None
        a = np.ones((n, n), np.float32)
        return lambda: a @ a

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        from dlbench_backends.numpy.trainer import NumpyTrainer

        return NumpyTrainer(spec, weights, replace(options, extra=self.check_options(options.extra)))


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(NumpyBackend)
