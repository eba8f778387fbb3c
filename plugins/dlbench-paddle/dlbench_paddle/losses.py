"""The Paddle backend's losses, from the logits ``z`` (``output`` is the last
layer's activation ``f``), each the batch mean as a 0-d tensor (the
conventions are :mod:`dlbench.network.loss`'s):

* categorical_crossentropy: ``F.cross_entropy(z, labels)`` (softmax inside,
  int64 labels, mean reduction); with ``label_smoothing`` eps, the target
  ``(1 - eps) onehot + eps / classes``: ``(1 - eps) CE + eps mean(logsumexp(z) - mean(z))``;
* binary_crossentropy: ``F.binary_cross_entropy_with_logits(z, t)``;
* mse, mae: ``F.mse_loss``, ``F.l1_loss`` of ``f(z)`` and ``t``;
* huber: ``mean(0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta))``, ``r = f(z) - t``,
  in Paddle ops as the spec writes it.
"""

from __future__ import annotations

import functools

import paddle
from paddle.nn import functional as F


def categorical_crossentropy(z, labels, output, label_smoothing: float = 0.0):
    """mean(logsumexp(z) - (1 - eps) z[label] - eps mean(z)); per timestep the mean over every token."""
    z, labels = z.reshape([-1, z.shape[-1]]), labels.reshape([-1])
    loss = F.cross_entropy(z, labels)
    if not label_smoothing:
        return loss
    uniform = (paddle.logsumexp(z, axis=-1) - z.mean(axis=-1)).mean()
    return loss * (1.0 - label_smoothing) + uniform * label_smoothing


def binary_crossentropy(z, targets, output):
    return F.binary_cross_entropy_with_logits(z, targets)


def mse(z, targets, output):
    return F.mse_loss(output(z), targets)


def mae(z, targets, output):
    return F.l1_loss(output(z), targets)


def huber(z, targets, output, delta: float = 1.0):
    r = output(z) - targets
    a = r.abs()
    return paddle.where(a <= delta, r * r * 0.5, (a - 0.5 * delta) * delta).mean()


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse, mae, huber)}


def bound_loss(spec):
    """The spec's loss with its options (huber's delta, label smoothing) bound."""
    return functools.partial(LOSSES[spec.loss], **spec.loss_kwargs)
