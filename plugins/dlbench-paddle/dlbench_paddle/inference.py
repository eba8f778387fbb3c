"""The Paddle backend's inference: the trainer's ``nn.Sequential`` in eval mode
(BatchNormalization on its moving statistics, Dropout the identity) under
``paddle.no_grad()`` (no autograd graph). The batch is gathered from the test
set placed by ``place_data``; the logits come back to the host once.
The network stays in eval mode while predictions follow each other; the
trainer's next training window switches it back."""

from __future__ import annotations

import numpy as np
import paddle


def predict(trainer, indices: np.ndarray) -> np.ndarray:
    """The logits of the test samples ``indices``."""
    if trainer.model.training:
        trainer.model.eval()
    with paddle.no_grad():
        rows = paddle.to_tensor(np.ascontiguousarray(indices, np.int64))
        return trainer.model(paddle.gather(trainer.x_test, rows)).numpy()
