"""The Paddle backend's losses, from the logits ``z`` (``output`` is the last
layer's activation ``f``), each the batch mean as a 0-d tensor:

* categorical_crossentropy: ``F.cross_entropy(z, labels)`` (softmax inside,
  int64 labels, mean reduction);
* binary_crossentropy: ``F.binary_cross_entropy_with_logits(z, t)``;
* mse: ``F.mse_loss(f(z), t)``.
"""

from __future__ import annotations

from paddle.nn import functional as F


def categorical_crossentropy(z, labels, output):
    """mean(logsumexp(z) - z[label]); per timestep the mean over every token."""
    return F.cross_entropy(z.reshape([-1, z.shape[-1]]), labels.reshape([-1]))


def binary_crossentropy(z, targets, output):
    return F.binary_cross_entropy_with_logits(z, targets)


def mse(z, targets, output):
    return F.mse_loss(output(z), targets)


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}
