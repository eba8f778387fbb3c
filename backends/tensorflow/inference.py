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

from dlbench_backends.tensorflow import framework

tf, _ = framework()


def make_predict(model, x_test, device: str, jit_compile: bool):
    """predict(indices) -> logits as a host array, for a model and its placed test set."""
    def logits(rows):
        return model(tf.gather(x_test, rows), training=False)

    function = tf.function(logits, input_signature=[tf.TensorSpec([None], tf.int64)], jit_compile=jit_compile)

    def predict(indices: np.ndarray) -> np.ndarray:
        with tf.device(device):
            return function(np.asarray(indices, np.int64)).numpy()

    return predict
