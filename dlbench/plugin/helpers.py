"""Framework-free pieces the backends share, so that each is written once:
what the loss compares outputs with, accuracy from outputs, a 1-D layer run
as a 2-D one, a convolution's padding, windows cut into fixed-size chunks
(one compile per batch size), XLA's thread switch.

Plain NumPy and the core's spec only: a backend imports this module before it
imports its framework, and a third-party backend may use it as the built-ins do.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from dlbench.network import ModelSpec
from dlbench.network.layers import conv_output_length


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], n), np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def is_regression(labels: np.ndarray) -> bool:
    """Whether a dataset's targets are float values (a regression's) rather than class labels."""
    return labels.dtype.kind == "f"


def loss_targets(spec: ModelSpec, labels: np.ndarray) -> np.ndarray:
    """What the loss compares the outputs with: integer labels for
    categorical cross-entropy, float (batch, units) targets otherwise: a
    regression's values as they are, a label or its one-hot encoding."""
    units = spec.output_shape[-1]
    if spec.loss == "categorical_crossentropy":  # (batch,) or, per timestep, (batch, time)
        return labels.astype(np.int64)
    if is_regression(labels):
        return labels.astype(np.float32).reshape(-1, units)
    if units == 1:
        return labels.astype(np.float32).reshape(-1, 1)
    return one_hot(labels, units)


def r_squared(outputs: np.ndarray, targets: np.ndarray) -> float:
    """The coefficient of determination of float outputs ``f(z)`` against
    regression targets: per output unit ``1 - sum((t - f)^2) / sum((t - mean t)^2)``,
    averaged over the units (scikit-learn's ``r2_score`` and Keras's ``R2Score``
    default, "uniform_average"), in float64. A unit whose targets are all equal
    has no variance to explain: it counts 1 if predicted exactly, else 0, as in
    scikit-learn."""
    f = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    t = np.asarray(targets, np.float64).reshape(f.shape)
    residual = np.sum((t - f) ** 2, axis=0)
    total = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(total > 0, 1.0 - residual / total, np.where(residual == 0, 1.0, 0.0))
    return float(np.mean(scores))


def evaluation_score(outputs: np.ndarray, labels: np.ndarray) -> float:
    """The second value of ``evaluate``: R^2 for float targets, accuracy for class labels."""
    return r_squared(outputs, labels) if is_regression(labels) else accuracy(outputs, labels)


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """The contract's accuracy (see :mod:`dlbench.plugin.backend`) from host
    outputs ``f(z)``: argmax for several units, ``> 0.5`` for one. Outputs per
    timestep (batch, time, classes) are judged per token: the share of all
    tokens whose class is right."""
    predicted = outputs[..., 0] > 0.5 if outputs.shape[-1] == 1 else outputs.argmax(axis=-1)
    return float(np.mean(predicted == labels))


def input_dtype(spec: ModelSpec, float_dtype=np.float32):
    """The dtype a trainer keeps its inputs in: int64 token ids for a model
    that starts with an embedding, ``float_dtype`` otherwise."""
    from dlbench.network.sequence import takes_tokens

    return np.int64 if takes_tokens(spec) else float_dtype


def as_2d(layer, values) -> tuple:
    """A 1-D layer's sizes as a 2-D layer's, with a height of 1: (k,) -> (1, k).
    Backends without 1-D kernels of their own run Conv1D/pooling as the 2-D ones."""
    return (1, *values) if layer.ndim == 1 else tuple(values)


def signal_as_image(x: np.ndarray) -> np.ndarray:
    """(B, L, C) -> (B, 1, L, C): a 1-D signal as an image of height 1 (a view)."""
    return x[:, None]


def padding_pairs(layer, in_shape) -> list[tuple[int, int]]:
    """(before, after) zeros per spatial axis of a Conv1D/Conv2D on ``in_shape``
    (spatial..., channels): TensorFlow's "same" puts the odd element after
    (:func:`dlbench.network.layers.conv_output_length`), an integer p is (p, p)."""
    return [conv_output_length(n, k, s, layer.padding)[1:]
            for n, k, s in zip(in_shape[:-1], layer.kernel_size, layer.strides)]


def padding_pairs_2d(layer, in_shape) -> list[tuple[int, int]]:
    """:func:`padding_pairs` for the layer run as a 2-D one (:func:`as_2d`):
    a Conv1D gets no padding along its height of 1."""
    pairs = padding_pairs(layer, in_shape)
    return [(0, 0), *pairs] if layer.ndim == 1 else pairs


def padded_chunks(indices: np.ndarray, chunk_steps: int, dtype) -> Iterator[tuple[np.ndarray, int]]:
    """(rows, steps) per compiled call: the window's rows cut into chunks of
    ``chunk_steps``, each zero-padded to (chunk_steps, batch) so that a compiler
    specialising on shapes compiles once per batch size, whatever the window
    lengths; the call runs only the first ``steps`` rows. An empty window is one
    chunk of 0 steps."""
    for start in range(0, max(len(indices), 1), chunk_steps):
        chunk = indices[start:start + chunk_steps]
        rows = np.zeros((chunk_steps, indices.shape[1]), dtype)
        rows[:len(chunk)] = chunk
        yield rows, len(chunk)


def xla_flags(threads: int) -> str:
    """The user's XLA_FLAGS plus XLA's CPU thread-pool switch for ``threads``
    (read by every framework that compiles with XLA: TensorFlow's jit_compile, JAX)."""
    own = "--xla_cpu_multi_thread_eigen=" + ("true" if threads > 1 else "false")
    return " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), own]))
