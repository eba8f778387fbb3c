"""The TensorFlow backend's losses, from the logits ``z`` (``output`` is the
final activation ``f``), each the batch mean as a 0-d tensor:
``tf.nn.sparse_softmax_cross_entropy_with_logits``,
``tf.nn.sigmoid_cross_entropy_with_logits``, and mse on ``f(z)``; the logits
are cast to float32 first (under a mixed policy they come in bf16/fp16, and
Keras's own losses compute in float32 too)."""

from __future__ import annotations

from dlbench_backends.tensorflow import framework

tf, _ = framework()


def categorical_crossentropy(z, labels, output):
    """mean(logsumexp(z) - z[label]), fused with its gradient softmax(z) - onehot."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=z))


def binary_crossentropy(z, targets, output):
    """mean(max(z, 0) - z t + log(1 + exp(-|z|)))."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=z))


def mse(z, targets, output):
    """mean((f(z) - t)^2), with the final activation f applied."""
    return tf.reduce_mean(tf.square(output(z) - targets))


def in_float32(loss):
    """``loss`` taking the logits in float32."""
    def of_float32_logits(z, targets, output):
        return loss(tf.cast(z, tf.float32), targets, output)
    return of_float32_logits


LOSSES = {f.__name__: in_float32(f) for f in (categorical_crossentropy, binary_crossentropy, mse)}
