"""The TensorFlow backend: Keras 3 layers on TensorFlow, trained by a
hand-written ``tf.function`` that runs a whole window of steps in one call.

The network is a ``keras.Sequential`` built from ``spec.logit_layers()``:
Dense, Conv1D/Conv2D (integer padding ``p`` as ZeroPadding1D/2D then a
"valid" convolution; "same" is TensorFlow's own), MaxPooling/AveragePooling
1D/2D, Flatten, Dropout, BatchNormalization, Activation. Keras's layouts are
the canonical ones (Dense kernel ``(in, out)``, Conv kernel
``(k..., in, filters)``, channels-last, row-major Flatten; BatchNormalization
``gamma, beta, moving_mean, moving_variance`` with the same momentum
convention and biased batch variance), so the initial weights are assigned
as they are. Dropout masks come from Keras's seeded generator (seed
``options.seed`` plus the layer index): reproducible, but not the NumPy
backend's masks, so only ``rate = 0`` can agree with it step by step.
Keras's own training machinery is not used: ``fit``
costs about three times a plain step, Keras's Adam adds epsilon to the
uncorrected ``sqrt(v)`` ("epsilon hat") and Keras's SGD momentum has another
form. Instead, one step is

    z = model(X);  E = loss(z, t);  g = dE/dW (tf.GradientTape);  W <- update(W, g)

with the losses from logits (``tf.nn.sparse_softmax_cross_entropy_with_logits``,
``tf.nn.sigmoid_cross_entropy_with_logits``, mse on ``f(z)``) and the
optimizers of :mod:`dlbench.spec` written in TF ops on ``tf.Variable`` slots:

    sgd:   v <- momentum v + g;  W <- W - lr v
    adam:  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
           W <- W - lr/(1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)

(bias corrections computed in float64 from an int64 step counter, then cast
to float32, as the NumPy reference computes them in Python floats).

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

Settings: precision ``fp32`` disables TensorFloat-32 (matmuls and
convolutions), ``tf32`` enables it; ``deterministic`` calls
``tf.config.experimental.enable_op_determinism()``. Both are process-wide in
TensorFlow (and determinism cannot be switched off again), which is why the
runner gives each run its own process.

Extra options (``TrainerOptions.extra``):

* ``jit_compile`` (bool, default False): XLA-compile the window function
  (``tf.function(jit_compile=True)``). XLA compiles once per input shape, so
  under XLA a window is run in chunks of ``XLA_CHUNK_STEPS`` rows (the last
  padded, the loop stopping at the real step count): one compile per batch
  size, whatever the window lengths. Not with ``deterministic`` for networks
  with max pooling: XLA has no deterministic max-pooling gradient.
"""

from __future__ import annotations

import functools
import os

import numpy as np

import dlbench
from dlbench.plugin.backend import PRECISIONS, Backend, Trainer, TrainerOptions, TrainingState, loss_targets
from dlbench.data.base import Dataset
from dlbench.errors import InputError, one_of
from dlbench.spec import (PARAMETERS_TRAINED, Activation, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D,
                          Conv2D, Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, ModelSpec)
from dlbench.spec.checks import check_choice

EXTRA_OPTIONS = {"jit_compile": False}
#: steps per XLA call: windows are cut into chunks padded to this many rows.
XLA_CHUNK_STEPS = 64


@functools.cache
def _framework():
    """(tensorflow, keras), imported on first use with Keras on TensorFlow."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"keras was already imported with the {keras.backend.backend()!r} backend; "
                           "the tensorflow backend needs KERAS_BACKEND=tensorflow")
    tf.get_logger().setLevel("ERROR")
    return tf, keras


def extra_options(extra: dict) -> dict:
    """The accepted extra options with their defaults filled in."""
    for key in extra:
        if key not in EXTRA_OPTIONS:
            raise InputError(f"unknown option {key!r}; {one_of(EXTRA_OPTIONS)}", field=f"backend_options.{key}")
    options = {**EXTRA_OPTIONS, **extra}
    if not isinstance(options["jit_compile"], bool):
        raise InputError(f"must be true or false, got {options['jit_compile']!r}",
                         field="backend_options.jit_compile")
    return options


# ------------------------------------------------------------------ losses
def categorical_crossentropy(tf, z, labels, output):
    """mean(logsumexp(z) - z[label]), fused with its gradient softmax(z) - onehot."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=z))


def binary_crossentropy(tf, z, targets, output):
    """mean(max(z, 0) - z t + log(1 + exp(-|z|)))."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=z))


def mse(tf, z, targets, output):
    """mean((f(z) - t)^2), with the final activation f applied."""
    return tf.reduce_mean(tf.square(output(z) - targets))


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}


# -------------------------------------------------------------- optimizers
class SGDUpdate:
    """v <- momentum v + g;  W <- W - lr v   (v = g when momentum is 0)."""

    def __init__(self, tf, config, variables):
        self.lr, self.momentum = config.learning_rate, config.momentum
        self.velocity = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables] \
            if self.momentum else [None] * len(variables)
        self.slots = {"velocity": self.velocity} if self.momentum else {}  # canonical slot name: variables
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False)  # steps taken
        self.variables = variables

    def apply(self, grads) -> None:
        self.t.assign_add(1)
        for var, g, velocity in zip(self.variables, grads, self.velocity):
            if velocity is not None:
                g = velocity.assign(velocity * self.momentum + g)
            var.assign_sub(g * self.lr)


class AdamUpdate:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, tf, config, variables):
        self.tf, self.config, self.variables = tf, config, variables
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.slots = {"m": self.m, "v": self.v}
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False)

    def apply(self, grads) -> None:
        tf, c = self.tf, self.config
        t = tf.cast(self.t.assign_add(1), tf.float64)

        def correction(beta):  # 1 - beta^t, in float64 like the reference's Python floats
            return 1.0 - tf.pow(tf.constant(beta, tf.float64), t)

        step_size = tf.cast(c.learning_rate / correction(c.beta_1), tf.float32)
        inv_root_correction = tf.cast(1.0 / tf.sqrt(correction(c.beta_2)), tf.float32)
        for var, g, m, v in zip(self.variables, grads, self.m, self.v):
            m = m.assign(m * c.beta_1 + g * (1.0 - c.beta_1))
            v = v.assign(v * c.beta_2 + g * g * (1.0 - c.beta_2))
            var.assign_sub(m / (tf.sqrt(v) * inv_root_correction + c.epsilon) * step_size)


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate}


# ------------------------------------------------------------------ network
ZERO_INIT = {"kernel_initializer": "zeros", "bias_initializer": "zeros"}


def keras_layers(keras, layer, seed: int) -> list:
    """The Keras layers that compute one spec layer; the last one holds its parameters."""
    k = keras.layers
    if isinstance(layer, Dense):
        return [k.Dense(layer.units, activation=layer.activation, **ZERO_INIT)]
    if isinstance(layer, (Conv1D, Conv2D)):
        conv, zero_padding = (k.Conv1D, k.ZeroPadding1D) if layer.ndim == 1 else (k.Conv2D, k.ZeroPadding2D)
        explicit = not isinstance(layer.padding, str)  # p zeros on both sides, then a valid convolution
        padding = [zero_padding(layer.padding)] if explicit and layer.padding else []
        return padding + [conv(layer.filters, layer.kernel_size, strides=layer.strides,
                               padding="valid" if explicit else layer.padding, activation=layer.activation,
                               **ZERO_INIT)]
    pools = {MaxPool1D: k.MaxPooling1D, MaxPool2D: k.MaxPooling2D,
             AveragePool1D: k.AveragePooling1D, AveragePool2D: k.AveragePooling2D}
    if type(layer) in pools:
        return [pools[type(layer)](layer.pool_size, strides=layer.strides, padding="valid")]
    if isinstance(layer, Flatten):
        return [k.Flatten()]
    if isinstance(layer, Dropout):
        return [k.Dropout(layer.rate, seed=seed)]
    if isinstance(layer, BatchNormalization):
        return [k.BatchNormalization(momentum=layer.momentum, epsilon=layer.epsilon)]
    if isinstance(layer, Activation):
        return [k.Activation(layer.activation)]
    raise NotImplementedError(f"the tensorflow backend cannot build {layer.type!r} layers")


def build_model(keras, spec: ModelSpec, weights, seed: int):
    """keras.Sequential of the logit layers, holding exactly ``weights``;
    returns (model, per spec layer a dict of its tf.Variables by canonical name)."""
    per_layer = [keras_layers(keras, layer, seed + i) for i, layer in enumerate(spec.logit_layers())]
    model = keras.Sequential([keras.Input(spec.input_shape), *(k for layers in per_layer for k in layers)])
    params = []
    for layers, layer_weights in zip(per_layer + [[]], weights):
        variables = {}
        for name, value in layer_weights.items():
            variable = getattr(layers[-1], name)  # kernel, bias, gamma, beta, moving_mean, moving_variance
            variable.assign(value)
            variables[name] = variable.value  # the tf.Variable behind the Keras variable
        params.append(variables)
    return model, params


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    predicted = outputs[:, 0] > 0.5 if outputs.shape[1] == 1 else outputs.argmax(axis=1)
    return float(np.mean(predicted == labels))


class TensorflowTrainer(Trainer):
    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions, device_name: str):
        tf, keras = _framework()
        self.tf, self.spec = tf, spec
        self.jit_compile = extra_options(options.extra)["jit_compile"]
        self.device = "/GPU:0" if options.device == "gpu" else "/CPU:0"
        self.device_name = device_name
        with tf.device(self.device):
            self.model, self.params = build_model(keras, spec, weights, options.seed)
            #: (spec layer index, parameter name) of each trained variable, in the order of self.variables
            self.trained = [(i, name) for i, layer in enumerate(self.params) for name in layer
                            if name in PARAMETERS_TRAINED]
            self.variables = [self.params[i][name] for i, name in self.trained]
            self.optimizer = OPTIMIZERS[spec.optimizer.name](tf, spec.optimizer, self.variables)
        self.output = keras.activations.get(spec.output_activation)
        self.loss = functools.partial(LOSSES[spec.loss], tf, output=self.output)
        self._window = self._evaluate = None

    def _to_device(self, array: np.ndarray):
        with self.tf.device(self.device):
            return self.tf.identity(self.tf.convert_to_tensor(array))

    def place_data(self, data: Dataset) -> None:
        x_train = self._to_device(np.ascontiguousarray(data.x_train, np.float32))
        t_train = self._to_device(loss_targets(self.spec, data.y_train))
        x_test = self._to_device(np.ascontiguousarray(data.x_test, np.float32))
        t_test = self._to_device(loss_targets(self.spec, data.y_test))
        self.y_test = np.asarray(data.y_test)
        self._window = self._window_function(x_train, t_train)
        self._evaluate = self.tf.function(lambda: self._loss_and_outputs(x_test, t_test),
                                          jit_compile=self.jit_compile)

    def _step(self, x, targets):
        tf = self.tf
        with tf.GradientTape() as tape:
            loss = self.loss(self.model(x, training=True), targets)
        self.optimizer.apply(tape.gradient(loss, self.variables))
        return loss

    def _window_function(self, x_train, t_train):
        """One graph for a whole window: loop over the first ``steps`` rows of
        ``indices``, gather each batch, take a step, record its loss."""
        tf = self.tf

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
        z = self.model(x, training=False)
        return self.loss(z, targets), self.output(z)

    def _chunks(self, indices: np.ndarray):
        """(rows, steps) per call: the whole window in graph mode; under XLA,
        which compiles per input shape, chunks padded to XLA_CHUNK_STEPS rows
        so that there is one compile per batch size whatever the window length."""
        if not self.jit_compile:
            yield indices, len(indices)
            return
        for start in range(0, max(len(indices), 1), XLA_CHUNK_STEPS):
            chunk = indices[start:start + XLA_CHUNK_STEPS]
            padded = np.zeros((XLA_CHUNK_STEPS, indices.shape[1]), np.int64)
            padded[:len(chunk)] = chunk
            yield padded, len(chunk)

    def train(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        with self.tf.device(self.device):
            calls = [(self._window(rows, np.int32(steps)), steps) for rows, steps in self._chunks(indices)]
        return np.concatenate([losses.numpy()[:steps] for losses, steps in calls])

    def evaluate(self) -> tuple[float, float]:
        with self.tf.device(self.device):
            loss, outputs = self._evaluate()
        return float(loss.numpy()), accuracy(outputs.numpy(), self.y_test)

    def weights(self):
        return [{name: v.numpy().copy() for name, v in layer.items()} for layer in self.params]

    def state(self) -> TrainingState:
        # Keras's layouts are the canonical ones and the slots are in the parameters' shapes: no conversion
        slots = [{name: {} for name in layer if name in PARAMETERS_TRAINED} for layer in self.params]
        for slot, variables in self.optimizer.slots.items():
            for (i, name), variable in zip(self.trained, variables):
                slots[i][name][slot] = variable.numpy().copy()
        return TrainingState(self.weights(), slots, int(self.optimizer.t.numpy()))

    def load_state(self, state: TrainingState) -> None:
        for layer, given in zip(self.params, state.weights):
            for name, variable in layer.items():
                variable.assign(np.asarray(given[name], np.float32))
        for slot, variables in self.optimizer.slots.items():
            for (i, name), variable in zip(self.trained, variables):
                variable.assign(np.asarray(state.slots[i][name][slot], np.float32))
        self.optimizer.t.assign(state.step)


def xla_flags(threads: int) -> str:
    """The user's XLA_FLAGS plus XLA's CPU thread-pool switch for ``threads``."""
    own = "--xla_cpu_multi_thread_eigen=" + ("true" if threads > 1 else "false")
    return " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), own]))


class TensorflowBackend(Backend):
    name = "tensorflow"
    module = "tensorflow"
    distributions = ("tensorflow", "tensorflow-cpu", "keras")
    pip_install = 'pip install "dlbench[tensorflow]"'
    devices = ("cpu", "gpu")
    description = "Keras 3 layers on TensorFlow; a tf.function runs a window of steps in one graph"
    option_defaults = EXTRA_OPTIONS

    def thread_environment(self, threads: int, device: str) -> dict[str, str]:
        return {**super().thread_environment(threads, device), "TF_NUM_INTRAOP_THREADS": str(threads),
                "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                "XLA_FLAGS": xla_flags(threads)}  # jit_compile=true runs on XLA's CPU backend

    def configure_threads(self, threads: int) -> int:
        tf, _ = _framework()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already started in this process: its pools are fixed
            return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or threads
        return tf.config.threading.get_intra_op_parallelism_threads() or threads

    def gpu_name(self) -> str | None:
        tf, _ = _framework()
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        extra = extra_options(options.extra)
        check_choice(options.precision, PRECISIONS, "precision")
        if options.deterministic and extra["jit_compile"] and any(
                isinstance(layer, (MaxPool1D, MaxPool2D)) for layer in spec.layers):
            raise InputError("TensorFlow's XLA has no deterministic max-pooling gradient; "
                             "use jit_compile or deterministic, not both, for this network",
                             field="backend_options.jit_compile")
        tf, _ = _framework()
        device_name = "cpu"
        if options.device == "gpu":
            device_name = self.gpu_name()
            if device_name is None:
                raise RuntimeError("no GPU visible to TensorFlow")
        tf.config.experimental.enable_tensor_float_32_execution(options.precision == "tf32")
        if options.deterministic:
            tf.config.experimental.enable_op_determinism()
        return TensorflowTrainer(spec, weights, options, device_name)


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(TensorflowBackend)
