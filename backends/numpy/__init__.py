"""The from-scratch NumPy backend: forward pass, backpropagation, gradient descent.

Each layer (:mod:`dlbench_backends.numpy.kernels`) is a small class with
``forward`` and ``backward``. For a Dense layer with input ``X`` (batch, in),
kernel ``W`` (in, out) and bias ``b``:

    forward:   z = X W + b                 (one BLAS matmul)
    backward:  dE/dW = X^T dE/dz,  dE/db = sum_batch dE/dz,  dE/dX = dE/dz W^T

Losses return the batch-mean loss and its gradient with respect to the
logits. Optimizers update every parameter in
place: ``W <- W - lr * dE/dW`` (see :mod:`dlbench.spec` for momentum and Adam).

Speed: float32, matmuls through BLAS, no Python loop over samples; all
parameters (and gradients) are views into one flat buffer, so the optimizer
update is a handful of vectorized operations whatever the number of layers;
layers before which nothing is trained skip computing dE/dX, which nobody needs.
Dropout masks come from NumPy's generator seeded with the scenario seed.
"""

from __future__ import annotations

import math

import numpy as np

import dlbench
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions, TrainingState, loss_targets
from dlbench.data.base import Dataset
from dlbench.errors import InputError
from dlbench.spec.init import STREAM_BACKEND, rng_for
from dlbench.spec import (PARAMETERS_TRAINED, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, ModelSpec)
from dlbench_backends.numpy.kernels import (ActivationLayer, BatchNormLayer, ConvLayer, DenseLayer, DropoutLayer,
                                           FlattenLayer, PoolLayer)


# ------------------------------------------------------------------ losses
def categorical_crossentropy(z: np.ndarray, labels: np.ndarray, output: ActivationLayer):
    """E = mean(logsumexp(z) - z[label]);  dE/dz = (softmax(z) - onehot) / B."""
    batch = z.shape[0]
    rows = np.arange(batch)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    total = p.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(total[:, 0]) - shifted[rows, labels])
    p /= total
    p[rows, labels] -= 1.0
    p /= batch
    return float(loss), p


def binary_crossentropy(z: np.ndarray, targets: np.ndarray, output: ActivationLayer):
    """E = mean(max(z, 0) - z t + log(1 + exp(-|z|)));  dE/dz = (sigmoid(z) - t) / N."""
    loss = np.mean(np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z))))
    dz = 0.5 * (1.0 + np.tanh(0.5 * z))
    dz -= targets
    dz /= z.size
    return float(loss), dz


def mse(z: np.ndarray, targets: np.ndarray, output: ActivationLayer):
    """E = mean((f(z) - t)^2);  dE/dz = f'(z) * 2 (f(z) - t) / N."""
    diff = output.forward(z.copy()) - targets  # a new array: output.y is needed by backward
    loss = np.mean(diff * diff)
    diff *= 2.0 / diff.size
    return float(loss), output.backward(diff)


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}


# -------------------------------------------------------------- optimizers
class SGDUpdate:
    """v <- momentum v + g;  W <- W - lr v   (v = g when momentum is 0)."""

    def __init__(self, config, theta: np.ndarray, grad: np.ndarray):
        self.lr, self.momentum = config.learning_rate, config.momentum
        self.theta, self.grad = theta, grad
        self.velocity = np.zeros_like(theta) if self.momentum else None
        self.tmp = np.empty_like(theta)
        self.t = 0

    @property
    def slots(self) -> dict[str, np.ndarray]:
        """The optimizer state, flat like ``theta``, by its canonical name."""
        return {"velocity": self.velocity} if self.velocity is not None else {}

    def step(self) -> None:
        self.t += 1
        direction = self.grad
        if self.velocity is not None:
            self.velocity *= self.momentum
            self.velocity += self.grad
            direction = self.velocity
        np.multiply(direction, self.lr, out=self.tmp)
        self.theta -= self.tmp


class AdamUpdate:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, config, theta: np.ndarray, grad: np.ndarray):
        self.config = config
        self.theta, self.grad = theta, grad
        self.m = np.zeros_like(theta)
        self.v = np.zeros_like(theta)
        self.tmp = np.empty_like(theta)
        self.t = 0

    @property
    def slots(self) -> dict[str, np.ndarray]:
        return {"m": self.m, "v": self.v}

    def step(self) -> None:
        c, g, tmp = self.config, self.grad, self.tmp
        self.t += 1
        self.m *= c.beta_1
        np.multiply(g, 1.0 - c.beta_1, out=tmp)
        self.m += tmp
        self.v *= c.beta_2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - c.beta_2
        self.v += tmp
        np.sqrt(self.v, out=tmp)
        tmp *= 1.0 / np.sqrt(1.0 - c.beta_2 ** self.t)
        tmp += c.epsilon
        np.divide(self.m, tmp, out=tmp)
        tmp *= c.learning_rate / (1.0 - c.beta_1 ** self.t)
        self.theta -= tmp


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate}


# ------------------------------------------------------------------ network
class Network:
    """The layers of ``spec.logit_layers()``; trained parameters are views into
    one flat buffer (``theta``, gradients in ``grad``), moving statistics apart."""

    def __init__(self, spec: ModelSpec, weights, dtype=np.float32, seed: int = 0, reverse: bool = False):
        self.reverse = reverse  # matmuls summed in the opposite order (the certificate's rounding twin)
        trained = [(i, name, w) for i, layer in enumerate(weights) for name, w in layer.items()
                   if name in PARAMETERS_TRAINED]
        self.theta = np.zeros(sum(w.size for _, _, w in trained), dtype)
        self.grad = np.zeros_like(self.theta)
        self._params = [{} for _ in weights]
        self._grads = [{} for _ in weights]
        self.layout = []  # (layer, parameter name, offset in theta, shape)
        offset = 0
        for i, name, w in trained:
            self.layout.append((i, name, offset, w.shape))
            self._params[i][name] = self.theta[offset:offset + w.size].reshape(w.shape)
            self._params[i][name][...] = w
            self._grads[i][name] = self.grad[offset:offset + w.size].reshape(w.shape)
            offset += w.size
        self._state = [{name: w.astype(dtype) for name, w in layer.items() if name not in PARAMETERS_TRAINED}
                       for layer in weights]
        self.rng = rng_for(seed, STREAM_BACKEND)
        self.layers = []
        trained_before = False
        for i, (layer, (in_shape, _)) in enumerate(zip(spec.logit_layers(), spec.shapes)):
            self.layers.append(self._build(layer, in_shape, i, input_grad=trained_before))
            trained_before = trained_before or bool(self._params[i])
            if getattr(layer, "activation", "linear") != "linear":
                self.layers.append(ActivationLayer(layer.activation))
        self.output = ActivationLayer(spec.output_activation)
        self.loss = LOSSES[spec.loss]

    def _build(self, layer, in_shape, i: int, input_grad: bool):
        params, grads = self._params[i], self._grads[i]
        if isinstance(layer, Dense):
            return DenseLayer(params, grads, input_grad, self.reverse)
        if isinstance(layer, (Conv1D, Conv2D)):
            return ConvLayer(layer, in_shape, params, grads, input_grad, self.reverse)
        if isinstance(layer, (MaxPool1D, MaxPool2D)):
            return PoolLayer(layer, "max")
        if isinstance(layer, (AveragePool1D, AveragePool2D)):
            return PoolLayer(layer, "average")
        if isinstance(layer, Flatten):
            return FlattenLayer()
        if isinstance(layer, Dropout):
            return DropoutLayer(layer.rate, self.rng)
        if isinstance(layer, BatchNormalization):
            return BatchNormLayer(layer, params, grads, self._state[i])
        return ActivationLayer("linear")  # an Activation spec layer: its activation follows

    def logits(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        if isinstance(self.layers[0], ActivationLayer):
            x = x.copy()  # activations work in place; never on the caller's data
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def loss_and_gradients(self, x: np.ndarray, targets: np.ndarray) -> float:
        """Forward, loss, and backpropagation: fills the flat gradient buffer."""
        loss, dz = self.loss(self.logits(x), targets, self.output)
        for layer in reversed(self.layers):
            dz = layer.backward(dz)
            if dz is None:
                break
        return loss

    def weights(self):
        return [{name: v.copy() for name, v in {**params, **state}.items()}
                for params, state in zip(self._params, self._state)]

    def per_layer(self, flat: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Views of a buffer laid out like ``theta``, per layer and parameter."""
        views = [{} for _ in self._params]
        for i, name, offset, shape in self.layout:
            views[i][name] = flat[offset:offset + math.prod(shape)].reshape(shape)
        return views

    def set_weights(self, weights) -> None:
        for params, state, given in zip(self._params, self._state, weights):
            for name, target in {**params, **state}.items():
                target[...] = given[name]


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    predicted = outputs[:, 0] > 0.5 if outputs.shape[1] == 1 else outputs.argmax(axis=1)
    return float(np.mean(predicted == labels))


class NumpyTrainer(Trainer):
    device_name = "cpu"

    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions):
        self.spec = spec
        extra = NumpyBackend().check_options(options.extra)
        self.dtype = np.dtype(extra["dtype"])
        self.net = Network(spec, weights, dtype=self.dtype, seed=options.seed,
                           reverse=extra["summation"] == "reversed")
        self.optimizer = OPTIMIZERS[spec.optimizer.name](spec.optimizer, self.net.theta, self.net.grad)

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        targets = loss_targets(self.spec, labels)
        return targets if targets.dtype.kind == "i" else targets.astype(self.dtype)

    def place_data(self, data: Dataset) -> None:
        self.x_train = np.ascontiguousarray(data.x_train, self.dtype)
        self.t_train = self._targets(data.y_train)
        self.x_test = np.ascontiguousarray(data.x_test, self.dtype)
        self.y_test = data.y_test
        self.t_test = self._targets(data.y_test)

    def train(self, indices: np.ndarray) -> np.ndarray:
        losses = np.empty(len(indices))
        net, step = self.net, self.optimizer.step
        for i, rows in enumerate(indices):
            losses[i] = net.loss_and_gradients(self.x_train[rows], self.t_train[rows])
            step()
        return losses

    def evaluate(self) -> tuple[float, float]:
        z = self.net.logits(self.x_test, training=False)
        loss, _ = self.net.loss(z, self.t_test, self.net.output)
        return loss, accuracy(self.net.output.forward(z), self.y_test)

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
        return TrainingState(weights, slots, self.optimizer.t)

    def load_state(self, state: TrainingState) -> None:
        self.net.set_weights(state.weights)
        for name, flat in self.optimizer.slots.items():
            for views, given in zip(self.net.per_layer(flat), state.slots):
                for param, view in views.items():
                    view[...] = given[param][name]
        self.optimizer.t = state.step


class NumpyBackend(Backend):
    name = "numpy"
    module = "numpy"
    distributions = ("numpy",)
    pip_install = "pip install numpy"
    description = "from scratch: forward pass, backpropagation and the optimizer in NumPy"
    #: dtype "float64" and summation "reversed" give the parity certificate its
    #: yardsticks: exact arithmetic, and the same float32 sums in another order
    option_defaults = {"dtype": "float32", "summation": "forward"}

    def check_options(self, options: dict) -> dict:
        options = super().check_options(options)
        if options["dtype"] not in ("float32", "float64"):
            raise InputError(f"numpy.dtype must be float32 or float64, got {options['dtype']!r}",
                             field="--backend-option")
        if options["summation"] not in ("forward", "reversed"):
            raise InputError(f"numpy.summation must be forward or reversed, got {options['summation']!r}",
                             field="--backend-option")
        return options

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        return NumpyTrainer(spec, weights, options)


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(NumpyBackend)
