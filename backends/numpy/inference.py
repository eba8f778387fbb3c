"""The NumPy backend's inference: the forward pass of the layers in inference mode.

``predict(trainer, indices)`` gathers the batch ``X = x_test[indices]`` (one
fancy-indexing copy) and runs every layer's ``forward(X, training=False)``:

    Dense:               z = X W + b                       (one BLAS matmul)
    BatchNormalization:  y = gamma (x - moving_mean) / sqrt(moving_variance + eps) + beta
    Dropout:             y = x                             (the identity)

Nothing is kept for a backward pass and no moving statistic changes, so
prediction never touches the training state. There is nothing to compile:
the first call costs what every call costs. The layer objects cost a few tenths
of a microsecond over a hand-written loop of matmuls
(``tests/benchmarks/overhead_inference.py``, batch 1: 1.04x its latency on the
64-256-256-10 MLP, 1.06x on the 2-10-1 XOR net, whose prediction takes 4 us;
nothing at batch 256), each layer's forward being one bound method.
"""

from __future__ import annotations

import numpy as np


def predict(trainer, indices: np.ndarray) -> np.ndarray:
    """The logits of the test samples ``indices`` (any integer array), in the trainer's dtype."""
    return trainer.net.logits(trainer.x_test[indices], training=False)
