"""The NumPy backend's trainer: one Python loop over the window's steps, each
forward, loss, backpropagation and the in-place update (see the package
docstring for the maths).

Mixed precision (bf16, fp16): see :mod:`~dlbench_backends.numpy.precision`."""

from __future__ import annotations

import numpy as np

from dlbench.data.base import Dataset
from dlbench.plugin.backend import Trainer, TrainerOptions, TrainingState
from dlbench.plugin.helpers import evaluation_score, input_dtype, loss_targets
from dlbench.network import ModelSpec
from dlbench.network.precision import LOSS_SCALE, compute_dtype, scales_loss
from dlbench_backends.numpy import NumpyBackend, inference
from dlbench_backends.numpy.precision import Arithmetic, LossScaler
from dlbench_backends.numpy.network import build_network
from dlbench_backends.numpy.optim import build_optimizer


def blocks_of(summation: str) -> int:
    """The blocks of a "blocked<N>" summation (the certificate's twins); 0 for the others."""
    return int(summation[len("blocked"):]) if summation.startswith("blocked") else 0


class NumpyTrainer(Trainer):
    device_name = "cpu"

    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions):
        self.spec = spec
        extra = NumpyBackend.check_options(options.extra)
        self.dtype = np.dtype(extra["dtype"])
        operands = compute_dtype(options.precision) or ("tfloat32" if extra["tf32"] else None)
        arith = Arithmetic(operands, rounding=extra["rounding"],
                           reverse=extra["summation"] == "reversed", blocks=blocks_of(extra["summation"]))
        self.net = build_network(spec, weights, dtype=self.dtype, seed=options.seed, arith=arith)
        self.optimizer = build_optimizer(spec.optimizer, self.net.theta, self.net.grad)
        self.scaler = LossScaler() if scales_loss(options.precision) else None

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        targets = loss_targets(self.spec, labels)
        return targets if targets.dtype.kind == "i" else targets.astype(self.dtype)

    def place_data(self, data: Dataset) -> None:
        x_dtype = input_dtype(self.spec, self.dtype)  # token ids stay integers
        self.x_train = np.ascontiguousarray(data.x_train, x_dtype)
        self.t_train = self._targets(data.y_train)
        self.x_test = np.ascontiguousarray(data.x_test, x_dtype)
        self.y_test = data.y_test
        self.t_test = self._targets(data.y_test)

    def train(self, indices: np.ndarray) -> np.ndarray:
        losses = np.empty(len(indices))
        net, update = self.net, self.optimizer.update
        for i, rows in enumerate(indices):
            if self.scaler is None:
                losses[i] = net.loss_and_gradients(self.x_train[rows], self.t_train[rows])
                update()
            else:
                losses[i] = self.scaler.step(net, update, self.x_train[rows], self.t_train[rows])
        return losses

    def evaluate(self) -> tuple[float, float]:
        z = self.net.logits(self.x_test, training=False)
        loss, _ = self.net.loss(z, self.t_test, self.net.output)
        return loss, evaluation_score(self.net.output.forward(z), self.y_test)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return inference.predict(self, indices)

    def weights(self):
        return self.net.weights()

    def state(self) -> TrainingState:
        slots = [{} for _ in self.net._params]
        for name, flat in self.optimizer.slots.items():
            for i, views in enumerate(self.net.per_layer(flat)):
                for param, view in views.items():
                    slots[i].setdefault(param, {})[name] = view.astype(np.float32)
        for i, views in enumerate(self.net.per_layer(self.net.theta)):  # plain SGD: empty slot dicts
            for param in views:
                slots[i].setdefault(param, {})
        weights = [{k: v.astype(np.float32) for k, v in layer.items()} for layer in self.net.weights()]
        return TrainingState(weights, slots, self.optimizer.t, None if self.scaler is None else self.scaler.state)

    def load_state(self, state: TrainingState) -> None:
        self.net.set_weights(state.weights)
        for name, flat in self.optimizer.slots.items():
            for views, given in zip(self.net.per_layer(flat), state.slots):
                for param, view in views.items():
                    view[...] = given[param][name]
        self.optimizer.t = state.step
        if self.scaler is not None:
            self.scaler.state = state.loss_scale or LOSS_SCALE.start()
