"""The NumPy backend's token embedding, from scratch.

Embedding (ids X (batch, time) integers, table E (vocab, dim)):
    forward:   y[b, t] = E[X[b, t]]                       (a gather)
    backward:  dE/dE[v] = sum over (b, t) with X[b, t] = v of dE/dy[b, t]
               (a scatter-add, ``np.add.at``; nothing flows back to the ids)
"""

from __future__ import annotations

import numpy as np

from dlbench_backends.numpy.precision import PLAIN, Arithmetic


class EmbeddingLayer:
    """y = E[X]; the gradient rows of equal ids are summed into dE/dE."""

    def __init__(self, params: dict, grads: dict, arith: Arithmetic = PLAIN):
        self.params, self.grads, self.arith = params, grads, arith
        self.ids = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self.ids = x
        return self.params["embeddings"][x]

    def backward(self, dy: np.ndarray) -> None:
        grad = self.grads["embeddings"]
        grad[...] = 0.0
        ids, rows = self.ids.reshape(-1), dy.reshape(-1, dy.shape[-1])
        if self.arith.reverse:  # the same sums in the opposite order (the certificate's rounding twin)
            ids, rows = ids[::-1], rows[::-1]
        np.add.at(grad, ids, rows)
        return None
