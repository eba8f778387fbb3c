"""The PyTorch backend's losses, from the logits ``z`` (``output`` is the last
layer's activation ``f``), each the batch mean as a 0-d tensor:

* categorical_crossentropy: ``F.cross_entropy(z, labels)``;
* binary_crossentropy: ``F.binary_cross_entropy_with_logits(z, t)``;
* mse: ``F.mse_loss(f(z), t)``.
"""

from __future__ import annotations

from torch.nn import functional as F


def categorical_crossentropy(z, labels, output):
    """mean(logsumexp(z) - z[label]), fused with its gradient softmax(z) - onehot;
    per timestep (z (batch, time, classes)) the mean over every token."""
    if z.dim() > 2:
        return F.cross_entropy(z.flatten(0, -2), labels.flatten())
    return F.cross_entropy(z, labels)


def binary_crossentropy(z, targets, output):
    """mean(max(z, 0) - z t + log(1 + exp(-|z|)))."""
    return F.binary_cross_entropy_with_logits(z, targets)


def mse(z, targets, output):
    """mean((f(z) - t)^2), with the final activation f applied."""
    return F.mse_loss(output(z), targets)


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}
