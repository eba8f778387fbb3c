"""The PyTorch backend's losses, from the logits ``z`` (``output`` is the last
layer's activation ``f``), each the batch mean as a 0-d tensor, torch's own
functional losses (the conventions are :mod:`dlbench.network.loss`'s):

* categorical_crossentropy: ``F.cross_entropy(z, labels, label_smoothing=eps)``;
* binary_crossentropy: ``F.binary_cross_entropy_with_logits(z, t)``;
* mse, mae, huber: ``F.mse_loss``, ``F.l1_loss``, ``F.huber_loss(delta=)`` of ``f(z)`` and ``t``.
"""

from __future__ import annotations

import functools

from torch.nn import functional as F


def categorical_crossentropy(z, labels, output, label_smoothing: float = 0.0):
    """mean(logsumexp(z) - (1 - eps) z[label] - eps mean(z)), fused with its gradient
    softmax(z) - q; per timestep (z (batch, time, classes)) the mean over every token."""
    if z.dim() > 2:
        return F.cross_entropy(z.flatten(0, -2), labels.flatten(), label_smoothing=label_smoothing)
    return F.cross_entropy(z, labels, label_smoothing=label_smoothing)


def binary_crossentropy(z, targets, output):
    """mean(max(z, 0) - z t + log(1 + exp(-|z|)))."""
    return F.binary_cross_entropy_with_logits(z, targets)


def mse(z, targets, output):
    """mean((f(z) - t)^2), with the final activation f applied."""
    return F.mse_loss(output(z), targets)


def mae(z, targets, output):
    """mean(|f(z) - t|); its gradient at f(z) = t is 0 (torch's sign)."""
    return F.l1_loss(output(z), targets)


def huber(z, targets, output, delta: float = 1.0):
    """mean(0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta)), r = f(z) - t."""
    return F.huber_loss(output(z), targets, delta=delta)


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse, mae, huber)}


def bound_loss(spec):
    """The spec's loss with its options (huber's delta, label smoothing) bound."""
    return functools.partial(LOSSES[spec.loss], **spec.loss_kwargs)
