"""The Paddle backend's losses, from the logits ``z`` (``output`` is the last
layer's activation ``f``), each the batch mean as a 0-d tensor, Paddle's own
functions with the spec's options passed explicitly (``dlbench.network.loss``):

* categorical_crossentropy: ``F.cross_entropy(z, labels, label_smoothing=eps)``
  (softmax inside, int64 labels, mean reduction; its smoothed target is the
  spec's ``(1 - eps) onehot + eps / K``);
* binary_crossentropy: ``F.binary_cross_entropy_with_logits(z, t)``;
* mse, mae: ``F.mse_loss``, ``F.l1_loss`` of ``f(z)`` and ``t`` (``l1_loss``'s
  gradient at ``f(z) = t`` is 0, the spec's ``sign(0)``);
* huber: ``F.smooth_l1_loss(f(z), t, delta=delta, is_huber=True)``, which is
  Huber's ``0.5 r^2`` / ``delta (|r| - 0.5 delta)`` (``is_huber=False`` would
  be torch's SmoothL1, Huber divided by delta).
"""

from __future__ import annotations

import functools

from paddle.nn import functional as F


def categorical_crossentropy(z, labels, output, label_smoothing: float = 0.0):
    """mean(logsumexp(z) - (1 - eps) z[label] - eps mean(z)); per timestep the mean over every token
    (flattened to tokens; a (batch, classes) step takes no reshape, two ops fewer per step)."""
    if len(z.shape) > 2:
        z, labels = z.reshape([-1, z.shape[-1]]), labels.reshape([-1])
    return F.cross_entropy(z, labels, label_smoothing=label_smoothing)


def binary_crossentropy(z, targets, output):
    return F.binary_cross_entropy_with_logits(z, targets)


def mse(z, targets, output):
    return F.mse_loss(output(z), targets)


def mae(z, targets, output):
    return F.l1_loss(output(z), targets)


def huber(z, targets, output, delta: float = 1.0):
    return F.smooth_l1_loss(output(z), targets, delta=delta, is_huber=True)


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse, mae, huber)}


def bound_loss(spec):
    """The spec's loss with its options (huber's delta, label smoothing) bound."""
    return functools.partial(LOSSES[spec.loss], **spec.loss_kwargs)
