"""The NumPy backend's losses, from the logits ``z``: each returns the batch
mean E and its gradient dE/dz, which backpropagation starts from. ``output``
is the network's final activation layer ``f`` (mse needs f(z) and f')."""

from __future__ import annotations

import numpy as np

from dlbench_backends.numpy.activations import ActivationLayer


def categorical_crossentropy(z: np.ndarray, labels: np.ndarray, output: ActivationLayer):
    """E = mean(logsumexp(z) - z[label]);  dE/dz = (softmax(z) - onehot) / B.
    Per timestep (z (batch, time, classes), labels (batch, time)) the same over
    the B = batch*time tokens."""
    if z.ndim > 2:
        loss, dz = categorical_crossentropy(z.reshape(-1, z.shape[-1]), labels.reshape(-1), output)
        return loss, dz.reshape(z.shape)
    batch = z.shape[0]
    rows = np.arange(batch)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    total = p.sum(axis=1, keepdims=True)
    # the mean as the sum over the batch / B: np.mean's own result (its float64 division of a
    # float32 sum rounds to the same float32) without its wrappers, ~4 us a step at batch 1
    loss = (np.log(total[:, 0]) - shifted[rows, labels]).sum() / batch
    p /= total
    p[rows, labels] -= 1.0
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


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}
