"""The TensorFlow backend's mixed precision (:mod:`dlbench.network.precision`).

The network is built under a Keras 3 dtype policy (:data:`POLICIES`): at
bf16/fp16 ``mixed_bfloat16``/``mixed_float16``, whose layers keep float32
variables, cast their inputs and (inside ``call``) their variables to the
compute dtype and return compute-dtype outputs; BatchNormalization and
LayerNormalization compute their statistics in float32, the attention's
softmax is taken in float32 (:mod:`~dlbench_backends.tensorflow.transformer`)
and the loss takes the logits in float32; variables, gradients and the update
stay float32.

fp16's dynamic loss scaling is written in TF ops inside the step, on the
core's schedule (:data:`dlbench.network.precision.LOSS_SCALE`): Keras's
``LossScaleOptimizer`` wraps a Keras optimizer, which this backend does not
use (see the package docstring). The gradient of ``scale * loss`` is divided
by the scale; when any element is inf/NaN the update is skipped
(``tf.cond``), step count included, and the scale backs off.
"""

from __future__ import annotations

import contextlib

from dlbench.network.precision import LOSS_SCALE
from dlbench_backends.tensorflow.core import framework

tf, keras = framework()

#: the Keras dtype policy of each precision
POLICIES = {"fp32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Keras's global dtype policy set to ``precision``'s while layers are made (restored after)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class LossScaler:
    """fp16's dynamic loss scale as TF variables, moved inside the step's graph
    (the module API's loss scaler, ``docs/backends/module-api.md``):
    ``scale(loss)`` multiplies by the scale, ``unscale(grads)`` returns them
    divided by it with the overflow flag (a bool tensor: an inf/NaN somewhere),
    ``update(overflow)`` moves the scale; ``state()`` / ``load`` read and set it."""

    def __init__(self):
        scale, good_steps = LOSS_SCALE.start()
        self.factor = tf.Variable(scale, dtype=tf.float32, trainable=False)
        self.good_steps = tf.Variable(good_steps, dtype=tf.int64, trainable=False)

    def scale(self, loss):
        return loss * self.factor

    def unscale(self, grads):
        finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
        inverse = 1.0 / self.factor
        return [g * inverse for g in grads], tf.logical_not(finite)

    def update(self, overflow) -> None:
        s, finite = LOSS_SCALE, tf.logical_not(overflow)
        good = self.good_steps + 1
        grow = tf.logical_and(finite, tf.equal(good, s.growth_interval))
        self.factor.assign(tf.where(finite, tf.where(grow, self.factor * s.growth_factor, self.factor),
                                    self.factor * s.backoff_factor))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)), good, tf.zeros_like(good)))

    def state(self) -> tuple[float, int]:
        return float(self.factor.numpy()), int(self.good_steps.numpy())

    def load(self, state: tuple[float, int]) -> None:
        self.factor.assign(state[0])
        self.good_steps.assign(state[1])
