"""The PyTorch backend's inference: the trainer's ``nn.Sequential`` in eval
mode under ``torch.inference_mode()``.

Eval mode makes BatchNormalization use its moving statistics and Dropout the
identity; ``inference_mode`` records no autograd graph and skips version
counting. The batch is gathered on the device (``index_select`` on the
test set placed by ``place_data``), the logits copied to the host once
(which waits for the device).

The model is switched to eval mode on the first prediction and stays so
while predictions follow each other; ``TorchTrainer.train`` switches it back
before the next training step (one ``model.eval()`` walks every module,
a few microseconds that would otherwise sit in every batch-1 latency).

Option ``compile`` (default False, as for training): the forward pass goes
through ``torch.compile`` (inductor, ``dynamic=False``: one compile per batch
size, on its first call, which the core times as compile time). Off by
default because on CPU inductor takes seconds to tens of seconds per batch
size, more than many whole inference runs, and eager mode under
``inference_mode`` is what ``torch`` serves with unless a deployment opts in.
"""

from __future__ import annotations

import numpy as np
import torch


class Predictor:
    """The trainer's forward pass in inference mode, compiled or not."""

    def __init__(self, trainer):
        self.trainer = trainer
        forward = trainer.model
        if trainer.options_extra["compile"]:  # the trainer's options, checked and filled once
            forward = torch.compile(forward, dynamic=False)
        self.forward = forward
        self.on_gpu = trainer.device.type != "cpu"  # on CPU, .to() and .cpu() are calls that do nothing

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        trainer = self.trainer
        if trainer.model.training:
            trainer.model.eval()
        with torch.inference_mode(), trainer.autocast():
            rows = torch.from_numpy(np.ascontiguousarray(indices, np.int64))
            if self.on_gpu:
                rows = rows.to(trainer.device)
            z = self.forward(trainer._network_input(trainer.x_test.index_select(0, rows)))
            z = z.float()  # at bf16/fp16 autocast leaves the logits in the compute dtype
            return (z.cpu() if self.on_gpu else z).numpy()


def predict(trainer, indices: np.ndarray) -> np.ndarray:
    """The logits of the test samples ``indices`` (the predictor is made on the first call)."""
    if trainer.predictor is None:
        trainer.predictor = Predictor(trainer)
    return trainer.predictor(indices)
