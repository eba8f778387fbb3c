"""The NumPy backend's losses, from the logits ``z``: each returns the batch
mean E and its gradient dE/dz, which backpropagation starts from. ``output``
is the network's final activation layer ``f`` (the regression losses need
f(z) and f'). The conventions are :mod:`dlbench.network.loss`'s, written out
by hand here: this is the reference the other backends are judged against."""

from __future__ import annotations

import functools

import numpy as np

from dlbench_backends.numpy.activations import ActivationLayer


def categorical_crossentropy(z: np.ndarray, labels: np.ndarray, output: ActivationLayer,
                             label_smoothing: float = 0.0):
    """E = mean(logsumexp(z) - (1 - eps) z[label] - eps mean_j z_j);  dE/dz = (softmax(z) - q) / B
    with q = (1 - eps) onehot + eps / K. Per timestep (z (batch, time, classes), labels
    (batch, time)) the same over the B = batch*time tokens."""
    if z.ndim > 2:
        loss, dz = categorical_crossentropy(z.reshape(-1, z.shape[-1]), labels.reshape(-1), output, label_smoothing)
        return loss, dz.reshape(z.shape)
    batch, classes = z.shape
    rows = np.arange(batch)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    total = p.sum(axis=1, keepdims=True)
    per_sample = np.log(total[:, 0]) - (1.0 - label_smoothing) * shifted[rows, labels]
    if label_smoothing:
        per_sample -= label_smoothing * shifted.mean(axis=1)
    # the mean as the sum over the batch / B: np.mean's own result (its float64 division of a
    # float32 sum rounds to the same float32) without its wrappers, ~4 us a step at batch 1
    loss = per_sample.sum() / batch
    p /= total
    if label_smoothing:
        p -= label_smoothing / classes
    p[rows, labels] -= 1.0 - label_smoothing
    p /= batch
    return float(loss), p


def binary_crossentropy(z: np.ndarray, targets: np.ndarray, output: ActivationLayer):
    """E = mean(max(z, 0) - z t + log(1 + exp(-|z|)));  dE/dz = (sigmoid(z) - t) / N."""
    loss = np.mean(np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z))))
    dz = 0.5 * (1.0 + np.tanh(0.5 * z))
    dz -= targets
    dz /= z.size
    return float(loss), dz


def mse(z: np.ndarray, targets: np.ndarray, output: ActivationLayer):
    """E = mean((f(z) - t)^2);  dE/dz = f'(z) * 2 (f(z) - t) / N."""
    diff = output.forward(z.copy()) - targets  # a new array: output.y is needed by backward
    loss = np.mean(diff * diff)
    diff *= 2.0 / diff.size
    return float(loss), output.backward(diff)


def mae(z: np.ndarray, targets: np.ndarray, output: ActivationLayer):
    """E = mean(|f(z) - t|);  dE/dz = f'(z) * sign(f(z) - t) / N, sign(0) = 0."""
    diff = output.forward(z.copy()) - targets
    loss = np.mean(np.abs(diff))
    return float(loss), output.backward(np.sign(diff) / diff.size)


def huber(z: np.ndarray, targets: np.ndarray, output: ActivationLayer, delta: float = 1.0):
    """E = mean(0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta)), r = f(z) - t;
    dE/dz = f'(z) * clip(r, -delta, delta) / N."""
    r = output.forward(z.copy()) - targets
    size = np.abs(r)
    loss = np.mean(np.where(size <= delta, 0.5 * r * r, delta * (size - 0.5 * delta)))
    return float(loss), output.backward(np.clip(r, -delta, delta) / r.size)


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse, mae, huber)}


def bound_loss(spec):
    """The spec's loss with its options (huber's delta, label smoothing) bound."""
    return functools.partial(LOSSES[spec.loss], **spec.loss_kwargs)
