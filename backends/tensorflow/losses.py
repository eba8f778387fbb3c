"""The TensorFlow backend's losses, from the logits ``z`` (``output`` is the
final activation ``f``): ``tf.nn.sparse_softmax_cross_entropy_with_logits``
(``tf.nn.softmax_cross_entropy_with_logits`` of the smoothed target with label
smoothing, as Keras's ``CategoricalCrossentropy`` computes it),
``tf.nn.sigmoid_cross_entropy_with_logits``, and mse, mae, huber on ``f(z)``
(:mod:`dlbench.network.loss`'s conventions; Keras's ``Huber`` form). Each loss
function gives the per-element losses (per sample, per token for labels per
timestep, per output unit for mse); :data:`LOSSES` reduces them to the batch
mean as a 0-d tensor. The logits are cast to float32 first (under a mixed
policy they come in bf16/fp16, and Keras's own losses compute in float32 too).

A data-parallel replica takes :func:`replica_loss` instead: the sum of its
elements over the element count of the *global* batch
(``tf.nn.compute_average_loss``'s convention), so that the replicas' losses
and gradients summed (the all-reduce) are the single-process batch mean's.
"""

from __future__ import annotations

import functools

from dlbench_backends.tensorflow.core import framework

tf, _ = framework()


def categorical_crossentropy(z, labels, output, label_smoothing: float = 0.0):
    """logsumexp(z) - z[label] per sample (or token), fused with its gradient softmax(z) - onehot;
    with label smoothing eps, the cross-entropy of q = (1 - eps) onehot + eps / K, gradient softmax(z) - q."""
    if not label_smoothing:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=z)
    classes = z.shape[-1]
    smoothed = tf.one_hot(labels, classes, dtype=z.dtype) * (1.0 - label_smoothing) + label_smoothing / classes
    return tf.nn.softmax_cross_entropy_with_logits(labels=smoothed, logits=z)


def binary_crossentropy(z, targets, output):
    """max(z, 0) - z t + log(1 + exp(-|z|)) per element."""
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=z)


def mse(z, targets, output):
    """(f(z) - t)^2 per element, with the final activation f applied."""
    return tf.square(output(z) - targets)


def mae(z, targets, output):
    """|f(z) - t| per element; tf.abs's gradient at 0 is sign(0) = 0."""
    return tf.abs(output(z) - targets)


def huber(z, targets, output, delta: float = 1.0):
    """0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta) per element, r = f(z) - t."""
    r = output(z) - targets
    size = tf.abs(r)
    return tf.where(size <= delta, 0.5 * tf.square(r), delta * (size - 0.5 * delta))


def batch_mean(loss):
    """``loss`` taking the logits in float32, averaged over every element of the batch."""
    def mean_of_float32_logits(z, targets, output, **options):
        return tf.reduce_mean(loss(tf.cast(z, tf.float32), targets, output, **options))
    return mean_of_float32_logits


LOSSES = {f.__name__: batch_mean(f) for f in (categorical_crossentropy, binary_crossentropy, mse, mae, huber)}
ELEMENTWISE = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse, mae, huber)}


def bound_loss(spec):
    """The spec's loss (the batch mean) with its options (huber's delta, label smoothing) bound."""
    return functools.partial(LOSSES[spec.loss], **spec.loss_kwargs)


def replica_loss(name: str, replicas: int, **options):
    """Loss ``name`` of one of ``replicas`` replicas, each holding an equal slice
    of the global batch: the sum of its elements over ``replicas`` times its own
    element count, i.e. over the global batch's element count (tokens included).
    The core's slices are equal, so the replicas' sum is exactly the global mean."""
    elementwise = ELEMENTWISE[name]

    def share_of_global_mean(z, targets, output):
        losses = elementwise(tf.cast(z, tf.float32), targets, output, **options)
        return tf.reduce_sum(losses) / tf.cast(tf.size(losses) * replicas, tf.float32)
    return share_of_global_mean
