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
from dlbench_backends.numpy import inference
from dlbench_backends.numpy.precision import Arithmetic, LossScaler
from dlbench_backends.numpy.network import build_network, from_canonical, to_canonical
from dlbench_backends.numpy.optim import build_optimizer


def blocks_of(summation: str) -> int:
    """The blocks of a "blocked<N>" summation (the certificate's twins); 0 for the others."""
    return int(summation[len("blocked"):]) if summation.startswith("blocked") else 0


class NumpyTrainer(Trainer):
    device_name = "cpu"

    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions):
        self.spec = spec
        extra = options.extra  # filled by NumpyBackend.build
        self.dtype = np.dtype(extra["dtype"])
        operands = compute_dtype(options.precision) or ("tfloat32" if extra["tf32"] else None)
        arith = Arithmetic(operands, rounding=extra["rounding"],
                           reverse=extra["summation"] == "reversed", blocks=blocks_of(extra["summation"]))
        self.net = build_network(spec, weights, dtype=self.dtype, seed=options.seed, arith=arith)
        self.optimizer = build_optimizer(spec.optimizer, self.net.theta)
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
        net, update, grad = self.net, self.optimizer.update, self.net.grad
        x_train, t_train = self.x_train, self.t_train
        if self.scaler is None:  # the plain or the loss-scaled step picked once per window, not per step
            for i, rows in enumerate(indices):
                losses[i] = net.loss_and_gradients(x_train[rows], t_train[rows])
                update(grad)
        else:
            for i, rows in enumerate(indices):
                losses[i] = self._scaled_step(x_train[rows], t_train[rows])
        return losses

    def _scaled_step(self, x: np.ndarray, targets: np.ndarray) -> float:
        """One fp16 step with loss scaling: a step with inf/NaN gradients changes
        nothing but the scale. Returns the unscaled loss."""
        scaler = self.scaler
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is what this step looks for
            loss = self.net.loss_and_gradients(x, targets, scaler.scale(1.0))
        grads, overflow = scaler.unscale(self.net.grad)
        if not overflow:
            self.optimizer.update(grads)
        scaler.update(overflow)
        return loss

    def evaluate(self) -> tuple[float, float]:
        z = self.net.logits(self.x_test, training=False)
        loss, _ = self.net.loss(z, self.t_test, self.net.output)
        return loss, evaluation_score(self.net.output.forward(z), self.y_test)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return inference.predict(self, indices)

    def weights(self):
        return to_canonical(self.spec, self.net)

    def state(self) -> TrainingState:
        slots = [{} for _ in self.net._params]
        for name, flat in self.optimizer.slots().items():
            for i, views in enumerate(self.net.per_layer(flat)):
                for param, view in views.items():
                    slots[i].setdefault(param, {})[name] = view.astype(np.float32)
        for i, views in enumerate(self.net.per_layer(self.net.theta)):  # plain SGD: empty slot dicts
            for param in views:
                slots[i].setdefault(param, {})
        weights = [{k: v.astype(np.float32) for k, v in layer.items()} for layer in self.net.weights()]
        return TrainingState(weights, slots, self.optimizer.t, None if self.scaler is None else self.scaler.state())

    def load_state(self, state: TrainingState) -> None:
        from_canonical(self.spec, self.net, state.weights)
        slots = {}
        for name in self.optimizer.slots():
            slots[name] = flat = np.empty_like(self.net.theta)
            for views, given in zip(self.net.per_layer(flat), state.slots):
                for param, view in views.items():
                    view[...] = given[param][name]
        self.optimizer.load_slots(slots, state.step)
        if self.scaler is not None:
            self.scaler.load(state.loss_scale or LOSS_SCALE.start())
