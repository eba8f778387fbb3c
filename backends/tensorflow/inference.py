"""The TensorFlow backend's inference: one ``tf.function`` that gathers the
batch from the test set on the device and calls the Keras model with
``training=False`` (BatchNormalization on its moving statistics, Dropout the
identity; no ``GradientTape``, so nothing is recorded for gradients).

The input signature (indices ``(None,)`` int64) makes it one trace for every
batch size in graph mode; reading the logits (``.numpy()``) waits for the device.

Option ``jit_compile`` (default False, as for training): the function is
XLA-compiled (``tf.function(jit_compile=True)``), once per batch size, on its
first call, which the core times as compile time. Off by default: a Keras
model served by TensorFlow runs the graph executor unless XLA is asked for,
and XLA on CPU is slower than oneDNN for the larger dense layers (see the
trainer's notes); turn it on to measure the fused form.
"""

from __future__ import annotations

import numpy as np

from dlbench_backends.tensorflow.core import framework

tf, _ = framework()


def make_function(model, x_test, jit_compile: bool):
    """The logits of the test rows ``rows`` (int64), as one tf.function."""
    def logits(rows):
        return tf.cast(model(tf.gather(x_test, rows), training=False), tf.float32)  # bf16/fp16 logits too

    return tf.function(logits, input_signature=[tf.TensorSpec([None], tf.int64)], jit_compile=jit_compile)


def predict(trainer, indices: np.ndarray) -> np.ndarray:
    """The logits of the test samples ``indices`` (the function is made on the first call)."""
    if trainer.predictor is None:
        trainer.predictor = make_function(trainer.model, trainer.x_test, trainer.jit_compile)
    with tf.device(trainer.device):
        return trainer.predictor(np.asarray(indices, np.int64)).numpy()
