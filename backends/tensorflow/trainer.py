"""The TensorFlow backend's trainer: one ``tf.function`` call per window.

Speed: the training data lives on the device; ``train(indices)`` makes ONE
call of a ``tf.function`` whose graph loops over the rows of ``indices``
(``tf.while_loop``), gathers each batch by index with ``tf.gather``, and
writes each step's loss into a ``TensorArray``. The input signature
(indices ``(None, None)`` int64, step count int32) makes it one trace
whatever the window length or batch size, and the only host round trip per
window is reading the stacked losses (which also waits for the device).
Without XLA a step costs about half a microsecond per graph op in TF's
executor, which dominates for tiny networks at batch size 1; ``jit_compile``
fuses them (about 10x faster on the 2-10-1 XOR net, somewhat slower than
oneDNN on the 64-256-256-10 MLP on CPU).

Mixed precision: see :mod:`~dlbench_backends.tensorflow.precision`.
"""

from __future__ import annotations

import functools

import numpy as np

from dlbench.data.base import Dataset
from dlbench.plugin.backend import Trainer, TrainerOptions, TrainingState
from dlbench.plugin.helpers import accuracy, input_dtype, loss_targets, padded_chunks
from dlbench.spec import ModelSpec, is_trained
from dlbench.spec.precision import LOSS_SCALE, scales_loss
from dlbench_backends.tensorflow import TensorflowBackend, framework, inference
from dlbench_backends.tensorflow.losses import LOSSES
from dlbench_backends.tensorflow.network import build_network
from dlbench_backends.tensorflow.optim import build_optimizer
from dlbench_backends.tensorflow.precision import LossScaler
from dlbench_backends.tensorflow.sequence import dense_gradients

tf, keras = framework()

#: steps per XLA call: windows are cut into chunks padded to this many rows.
XLA_CHUNK_STEPS = 64


class TensorflowTrainer(Trainer):
    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions, device_name: str):
        self.spec = spec
        self.jit_compile = TensorflowBackend.check_options(options.extra)["jit_compile"]
        self.device = "/GPU:0" if options.device == "gpu" else "/CPU:0"
        self.device_name = device_name
        with tf.device(self.device):
            self.model, self.params = build_network(spec, weights, options.seed, options.precision)
            #: (spec layer index, parameter name) of each trained variable, in the order of self.variables
            self.trained = [(i, name) for i, layer in enumerate(self.params) for name in layer
                            if is_trained(name)]
            self.variables = [self.params[i][name] for i, name in self.trained]
            self.optimizer = build_optimizer(spec.optimizer, self.variables)
            self.scaler = LossScaler() if scales_loss(options.precision) else None
        self.output = keras.activations.get(spec.output_activation)
        self.loss = functools.partial(LOSSES[spec.loss], output=self.output)
        self._window = self._evaluate = self.predictor = None

    def _to_device(self, array: np.ndarray):
        with tf.device(self.device):
            return tf.identity(tf.convert_to_tensor(array))

    def place_data(self, data: Dataset) -> None:
        x_dtype = input_dtype(self.spec)  # token ids stay integers
        x_train = self._to_device(np.ascontiguousarray(data.x_train, x_dtype))
        t_train = self._to_device(loss_targets(self.spec, data.y_train))
        x_test = self._to_device(np.ascontiguousarray(data.x_test, x_dtype))
        t_test = self._to_device(loss_targets(self.spec, data.y_test))
        self.y_test = np.asarray(data.y_test)
        self._window = self._window_function(x_train, t_train)
        self._evaluate = tf.function(lambda: self._loss_and_outputs(x_test, t_test), jit_compile=self.jit_compile)
        self.x_test = x_test  # for predict (see :mod:`~dlbench_backends.tensorflow.inference`)

    def _step(self, x, targets):
        with tf.GradientTape() as tape:
            loss = self.loss(self.model(x, training=True), targets)
            scaled = loss if self.scaler is None else loss * self.scaler.scale
        grads = dense_gradients(tape.gradient(scaled, self.variables))
        if self.scaler is None:
            self.optimizer.update(grads)
        else:
            self.scaler.step(grads, self.optimizer.update)
        return loss

    def _window_function(self, x_train, t_train):
        """One graph for a whole window: loop over the first ``steps`` rows of
        ``indices``, gather each batch, take a step, record its loss."""

        def window(indices, steps):
            def body(i, losses):
                rows = indices[i]
                loss = self._step(tf.gather(x_train, rows), tf.gather(t_train, rows))
                return i + 1, losses.write(i, loss)

            losses = tf.TensorArray(tf.float32, size=tf.shape(indices)[0], element_shape=())
            _, losses = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), losses),
                                      parallel_iterations=1)
            return losses.stack()

        signature = [tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([], tf.int32)]
        return tf.function(window, input_signature=signature, jit_compile=self.jit_compile)

    def _loss_and_outputs(self, x, targets):
        z = tf.cast(self.model(x, training=False), tf.float32)
        return self.loss(z, targets), self.output(z)

    def _chunks(self, indices: np.ndarray):
        """(rows, steps) per call: the whole window in graph mode; under XLA,
        which compiles per input shape, chunks padded to XLA_CHUNK_STEPS rows
        so that there is one compile per batch size whatever the window length."""
        if not self.jit_compile:
            return [(indices, len(indices))]
        return padded_chunks(indices, XLA_CHUNK_STEPS, np.int64)

    def train(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        with tf.device(self.device):
            calls = [(self._window(rows, np.int32(steps)), steps) for rows, steps in self._chunks(indices)]
        return np.concatenate([losses.numpy()[:steps] for losses, steps in calls])

    def evaluate(self) -> tuple[float, float]:
        with tf.device(self.device):
            loss, outputs = self._evaluate()
        return float(loss.numpy()), accuracy(outputs.numpy(), self.y_test)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return inference.predict(self, indices)

    def weights(self):
        return [{name: v.numpy().copy() for name, v in layer.items()} for layer in self.params]

    def state(self) -> TrainingState:
        # Keras's layouts are the canonical ones and the slots are in the parameters' shapes: no conversion
        slots = [{name: {} for name in layer if is_trained(name)} for layer in self.params]
        for slot, variables in self.optimizer.slots.items():
            for (i, name), variable in zip(self.trained, variables):
                slots[i][name][slot] = variable.numpy().copy()
        return TrainingState(self.weights(), slots, int(self.optimizer.t.numpy()),
                             None if self.scaler is None else self.scaler.state())

    def load_state(self, state: TrainingState) -> None:
        for layer, given in zip(self.params, state.weights):
            for name, variable in layer.items():
                variable.assign(np.asarray(given[name], np.float32))
        for slot, variables in self.optimizer.slots.items():
            for (i, name), variable in zip(self.trained, variables):
                variable.assign(np.asarray(state.slots[i][name][slot], np.float32))
        self.optimizer.t.assign(state.step)
        if self.scaler is not None:
            self.scaler.load(state.loss_scale or LOSS_SCALE.start())

