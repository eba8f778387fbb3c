"""The JAX backend's inference: the network's pure forward function in
inference mode (``training=False``: BatchNormalization on its moving
statistics, Dropout the identity), jitted together with the gather of the
batch from the test set on the device.

There is no gradient to skip (only ``jax.grad`` makes one) and no option to
choose: JAX serves jitted functions, so XLA compiles once per batch size, on
the first call, which the core times as compile time. Reading the logits
(``np.asarray``) waits for the device.

The parameters and moving statistics are read from the trainer's carry, so
predictions after training use the trained weights (the carry is never
donated here). They go to the jitted call as a flat list of arrays, made
again only when the carry changed (a training step): flattening the nested
per-layer dicts on every call costs about a microsecond, a tenth of a
batch-1 prediction of a small network.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlbench_backends.jax.network import build_forward


class Predictor:
    """The jitted forward pass of one trainer's network, in inference mode."""

    def __init__(self, trainer):
        forward = build_forward(trainer.spec, trainer.precision, trainer.seed, trainer.custom_vjp)
        options = {"compiler_options": trainer.compiler_options} if trainer.compiler_options else {}
        self.trainer, self.seen, self.leaves = trainer, None, None
        self.treedef = jax.tree_util.tree_structure(tuple(trainer.carry[:2]))

        @functools.partial(jax.jit, **options)
        def logits(leaves, x_test, rows):
            params, stats = jax.tree_util.tree_unflatten(self.treedef, leaves)
            z, _ = forward(params, stats, jnp.take(x_test, rows, axis=0, mode="clip"), False)
            return z

        self.logits = logits

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        carry = self.trainer.carry
        if carry is not self.seen:
            self.seen, self.leaves = carry, jax.tree_util.tree_leaves(tuple(carry[:2]))
        # the indices go as they are: jit converts them to int32 on the way to the device
        return np.asarray(self.logits(self.leaves, self.trainer.x_test, indices))


def predict(trainer, indices: np.ndarray) -> np.ndarray:
    """The logits of the test samples ``indices`` (the predictor is made on the first call)."""
    if trainer.predictor is None:
        trainer.predictor = Predictor(trainer)
    return trainer.predictor(indices)
