"""The Paddle backend's trainer: dygraph ``paddle.nn`` layers, ``loss.backward()``
and ``paddle.optimizer``'s step, one step per batch.

A window of steps: the window's indices go to the device once, the batches of
up to 16 MiB of steps are gathered at once (``paddle.gather``), then per step:
forward, loss, ``backward``, the optimizer's step, gradients cleared. Each loss
stays a 0-d tensor; the window's are stacked and copied to the host once.

Option ``to_static`` (default False): the forward pass and loss go through
``paddle.jit.to_static`` (full graph), traced on the first step of each batch
shape; backward and update stay dygraph. It trains with the same losses, but
on a CPU it costs more than dygraph: measured side by side by the process's
CPU time, 0.87x the hand-written dygraph loop's samples/s on digits-mlp's
network and synthetic-fcn's, 0.48x at batch 1, where dygraph is 1.02-1.08x
and 0.98x (docs/backends/paddle.md), so it is off.

Dropout masks come from Paddle's global generator, which this trainer seeds
with ``options.seed`` and keeps apart (:class:`OwnGenerator`): its state is put
in place for each training window and saved after it, the process's state put
back, so the same seed gives the same masks, nothing else in the process moves
them, and they move nothing else (building the layers, whose initializers draw
from the generator, leaves it as it was too).

Training state: parameters and optimizer slots go to and from the canonical
layout through :func:`~dlbench_paddle.network.to_canonical` /
:func:`~dlbench_paddle.network.from_canonical`, slots and step through
:mod:`~dlbench_paddle.optim`. Only the canonical parameters are trained (an
LSTM's zero ``bias_hh`` and the moving statistics are not given to the optimizer).
"""

from __future__ import annotations

import numpy as np
import paddle

from dlbench.data.base import Dataset
from dlbench.network import ModelSpec, is_trained
from dlbench.plugin.backend import Trainer, TrainerOptions, TrainingState
from dlbench.plugin.helpers import evaluation_score, input_dtype, loss_targets
from dlbench_paddle import inference
from dlbench_paddle.losses import bound_loss
from dlbench_paddle.network import activation, build_network, holder_tensors, holder_weights, load_weights, \
    to_canonical, from_canonical
from dlbench_paddle.optim import build_optimizer

#: at most this many bytes of batches are gathered at once.
GATHER_BYTES = 16 << 20


class OwnGenerator:
    """Paddle's global generator as this trainer's own: ``with generator:`` puts
    its state in place (seeded with ``seed`` at first) and, on the way out,
    keeps the state it reached and gives the process back the state it had."""

    def __init__(self, seed: int):
        with self.outside():
            paddle.seed(seed)
            self.state = paddle.get_rng_state()

    @staticmethod
    def outside():
        """A context in which the process's generator may move: its state is put back after."""
        return _Restored()

    def __enter__(self):
        self.process_state = paddle.get_rng_state()
        paddle.set_rng_state(self.state)

    def __exit__(self, *exc):
        self.state = paddle.get_rng_state()
        paddle.set_rng_state(self.process_state)


class _Restored:
    def __enter__(self):
        self.state = paddle.get_rng_state()

    def __exit__(self, *exc):
        paddle.set_rng_state(self.state)


class PaddleTrainer(Trainer):
    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions):
        extra = options.extra  # filled and checked by PaddleBackend.build, with the device and precision
        paddle.set_device("cpu")
        self.spec = spec
        self.generator = OwnGenerator(options.seed)
        with OwnGenerator.outside():  # Paddle's initializers draw from it; the core's weights replace theirs
            self.model, self.holders = build_network(spec, weights)
        self.model.train()
        self.trained = list(self._trained_tensors())
        self.optimizer = build_optimizer(spec.optimizer, [t for _, _, tensors in self.trained for t in tensors])
        self.output = activation(spec.output_activation, spec.output_alpha)
        self.loss = loss = bound_loss(spec)
        model, output = self.model, self.output

        def loss_of(x, t):
            return loss(model(x), t, output)

        self.loss_of = paddle.jit.to_static(loss_of, full_graph=True) if extra["to_static"] else loss_of
        self.steps_taken = 0

    def _trained_tensors(self):
        """(layer index, canonical name, its Paddle tensors) of every trained parameter."""
        layers = self.spec.logit_layers()
        for i, holder in self.holders.items():
            for name, tensors in holder_tensors(holder, layers[i]).items():
                if is_trained(name):
                    yield i, name, tensors

    def place_data(self, data: Dataset) -> None:
        dtype = input_dtype(self.spec)
        self.x_train = paddle.to_tensor(np.ascontiguousarray(data.x_train, dtype))
        self.t_train = paddle.to_tensor(loss_targets(self.spec, data.y_train))
        self.x_test = paddle.to_tensor(np.ascontiguousarray(data.x_test, dtype))
        self.t_test = paddle.to_tensor(loss_targets(self.spec, data.y_test))
        self.y_test = np.asarray(data.y_test)  # class labels, or a regression's float targets
        self.sample_bytes = (self.x_train[0].numel() * self.x_train.element_size()
                             + self.t_train[0].numel() * self.t_train.element_size())

    def _step(self, x, t):
        loss = self.loss_of(x, t)
        loss.backward()
        self.optimizer.update()
        self.model.clear_gradients(set_to_zero=False)
        return loss.detach()

    def train(self, indices: np.ndarray) -> np.ndarray:
        self.model.train()  # predictions may have left it in eval mode
        steps, batch = indices.shape
        chunk = max(1, GATHER_BYTES // (batch * int(self.sample_bytes)))
        losses = []
        with self.generator:
            for start in range(0, steps, chunk):
                part = np.ascontiguousarray(indices[start:start + chunk], np.int64)
                rows = paddle.to_tensor(part.reshape(-1))
                xs = paddle.gather(self.x_train, rows).reshape([len(part), batch, *self.x_train.shape[1:]])
                ts = paddle.gather(self.t_train, rows).reshape([len(part), batch, *self.t_train.shape[1:]])
                for x, t in zip(paddle.unbind(xs, 0), paddle.unbind(ts, 0)):
                    losses.append(self._step(x, t))
        self.steps_taken += steps
        return paddle.stack(losses).numpy() if losses else np.zeros(0, np.float32)

    def evaluate(self) -> tuple[float, float]:
        self.model.eval()  # dropout off, BatchNormalization on its moving statistics
        try:
            with paddle.no_grad():
                z = self.model(self.x_test)
                loss = float(self.loss(z, self.t_test, self.output))
                out = self.output(z).numpy()
        finally:
            self.model.train()
        return loss, evaluation_score(out, self.y_test)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return inference.predict(self, indices)

    def weights(self):
        """One dict per spec layer; a final Activation layer, left out of the logit layers, has its empty one."""
        layers = self.spec.logit_layers()
        return [holder_weights(self.holders[i], layers[i]) if i in self.holders else {}
                for i in range(len(self.spec.layers))]

    def state(self) -> TrainingState:
        layers = self.spec.logit_layers()
        slots = [{} for _ in self.spec.layers]
        for i, name, tensors in self.trained:
            per_tensor = [self.optimizer.slots(t) for t in tensors]
            slots[i][name] = {slot: to_canonical(layers[i], name, [s[slot] for s in per_tensor])
                              for slot in self.optimizer.names}
        return TrainingState(self.weights(), slots, self.steps_taken)

    def load_state(self, state: TrainingState) -> None:
        layers = self.spec.logit_layers()
        for i, holder in self.holders.items():
            load_weights(holder, layers[i], state.weights[i])
        arrays = {}
        for i, name, tensors in self.trained:
            per_slot = {slot: from_canonical(layers[i], name, state.slots[i][name][slot])
                        for slot in self.optimizer.names}
            for k, tensor in enumerate(tensors):
                arrays[tensor.name] = {slot: values[k] for slot, values in per_slot.items()}
        self.optimizer.load_slots(arrays, state.step)
        self.steps_taken = state.step
