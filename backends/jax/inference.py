"""The JAX backend's inference: the network's pure forward function in
inference mode (``training=False``: BatchNormalization on its moving
statistics, Dropout the identity), jitted together with the gather of the
batch from the test set on the device.

There is no gradient to skip (only ``jax.grad`` makes one) and no option to
choose: JAX serves jitted functions, so XLA compiles once per batch size, on
the first call, which the core times as compile time. Reading the logits
(``np.asarray``) waits for the device. The parameters and moving statistics
are read from the trainer's carry at each call, so predictions after
training use the trained weights; the carry itself is never donated here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlbench_backends.jax.network import build_network


def make_predict(spec, precision, compiler_options, seed: int, custom_vjp: bool):
    """predict(params, stats, x_test, rows) -> logits, jitted."""
    forward = build_network(spec, precision, seed, custom_vjp)
    jit = functools.partial(jax.jit, **({"compiler_options": compiler_options} if compiler_options else {}))

    def predict(params, stats, x_test, rows):
        logits, _ = forward(params, stats, jnp.take(x_test, rows, axis=0), False)
        return logits

    return jit(predict)


def predict(trainer, indices: np.ndarray) -> np.ndarray:
    """The logits of the test samples ``indices`` (the jitted function is made on the first call)."""
    if trainer.predictor is None:
        trainer.predictor = make_predict(trainer.spec, trainer.precision, trainer.compiler_options,
                                         trainer.seed, trainer.custom_vjp)
    params, stats = trainer.carry[:2]
    return np.asarray(trainer.predictor(params, stats, trainer.x_test, np.asarray(indices, np.int32)))
