"""The NumPy backend's network: the layers of ``spec.logit_layers()`` built
from :mod:`~dlbench_backends.numpy.kernels`, holding the canonical weights
as they are (NumPy's layouts are the canonical ones).

Trained parameters are views into one flat buffer ``theta`` (their gradients
into ``grad``), so that the optimizer updates them all in a few vectorized
operations; the moving statistics of BatchNormalization are kept apart,
never seen by the optimizer.

The module API (``docs/backends/module-api.md``): ``build_network(spec,
weights, ...)`` -> :class:`Network`; ``to_canonical(spec, network)`` and
``from_canonical(spec, network, weights)`` (in place) are copies as they are.
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.network import (Activation, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Embedding, Flatten, GLOBAL_POOLS, MaxPool1D, MaxPool2D, ModelSpec,
                          activation_alpha, is_trained)
from dlbench.network.init import STREAM_BACKEND, rng_for
from dlbench_backends.numpy.precision import PLAIN, Arithmetic
from dlbench_backends.numpy.activations import KEEPS_OUTPUT, WRITES_INPUT, ActivationLayer
from dlbench_backends.numpy.kernels import (BatchNormLayer, ConvLayer, DenseLayer, DropoutLayer, FlattenLayer,
                                            GlobalPoolLayer, PoolLayer)
from dlbench_backends.numpy.losses import bound_loss
from dlbench.network.sequence import RECURRENT_LAYERS, Bidirectional
from dlbench_backends.numpy.recurrent import BidirectionalLayer, RecurrentLayer
from dlbench_backends.numpy.sequence import EmbeddingLayer
from dlbench_backends.numpy.transformer import TRANSFORMER_BUILDERS, ResidualLayer


class Network:
    """The layers of ``spec.logit_layers()``; trained parameters are views into
    one flat buffer (``theta``, gradients in ``grad``), moving statistics apart."""

    def __init__(self, spec: ModelSpec, weights, dtype=np.float32, seed: int = 0, arith: Arithmetic = PLAIN):
        self.arith = arith  # how matmuls round and sum (mixed precision; the certificate's twins)
        self._names = [list(layer) for layer in weights]
        trained = [(i, name, w) for i, layer in enumerate(weights) for name, w in layer.items()
                   if is_trained(name)]
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
        self._state = [{name: w.astype(dtype) for name, w in layer.items() if not is_trained(name)}
                       for layer in weights]
        self.rng = rng_for(seed, STREAM_BACKEND)
        self.layers = []
        trained_before = False
        for i, (layer, (in_shape, _)) in enumerate(zip(spec.logit_layers(), spec.shapes)):
            self.layers.extend(self._build_with_activation(layer, in_shape, self._params[i], self._grads[i],
                                                           self._state[i], input_grad=trained_before))
            trained_before = trained_before or bool(self._params[i])
        protect_kept_outputs(self.layers)
        self.output = ActivationLayer(spec.output_activation, spec.output_alpha)
        self.loss = bound_loss(spec)

    def _build_with_activation(self, layer, in_shape, params: dict, grads: dict, state: dict,
                               input_grad: bool = True) -> list:
        """The layer (its parameters the views ``params``, ``grads``, its moving
        statistics ``state``), then its activation if any."""
        built = [self._build(layer, in_shape, params, grads, state, input_grad)]
        if getattr(layer, "activation", "linear") != "linear":
            built.append(ActivationLayer(layer.activation, activation_alpha(layer)))
        return built

    def _build(self, layer, in_shape, params: dict, grads: dict, state: dict, input_grad: bool):
        if type(layer) in TRANSFORMER_BUILDERS:
            return TRANSFORMER_BUILDERS[type(layer)](layer, in_shape, params, grads, state, input_grad,
                                                     self.arith, self._build_with_activation)
        if isinstance(layer, Dense):
            return DenseLayer(params, grads, input_grad, self.arith)
        if isinstance(layer, (Conv1D, Conv2D)):
            return ConvLayer(layer, in_shape, params, grads, input_grad, self.arith)
        if isinstance(layer, (MaxPool1D, MaxPool2D)):
            return PoolLayer(layer, "max", self.arith)
        if isinstance(layer, (AveragePool1D, AveragePool2D)):
            return PoolLayer(layer, "average", self.arith)
        if isinstance(layer, GLOBAL_POOLS):
            return GlobalPoolLayer(layer.kind, self.arith)
        if isinstance(layer, Flatten):
            return FlattenLayer()
        if isinstance(layer, Dropout):
            return DropoutLayer(layer.rate, self.rng)
        if isinstance(layer, BatchNormalization):
            return BatchNormLayer(layer, params, grads, state, self.arith)
        if isinstance(layer, Embedding):
            return EmbeddingLayer(params, grads, self.arith)
        if isinstance(layer, RECURRENT_LAYERS):
            return RecurrentLayer(layer, params, grads, input_grad, self.arith)
        if isinstance(layer, Bidirectional):
            return BidirectionalLayer(layer, params, grads, input_grad, self.arith)
        if isinstance(layer, Activation):
            return ActivationLayer("linear")  # its activation follows
        raise NotImplementedError(f"the numpy backend cannot build {layer.type!r} layers")

    def logits(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        if isinstance(self.layers[0], ActivationLayer):
            x = x.copy()  # activations work in place; never on the caller's data
        store, rounds = self.arith.store, self.arith.round_outputs  # not rounding, store(x) is x: not called
        for layer in self.layers:
            x = layer.forward(x, training)
            if rounds:
                x = store(x)
        return x

    def loss_and_gradients(self, x: np.ndarray, targets: np.ndarray, loss_scale: float = 1.0) -> float:
        """Forward, loss, and backpropagation: fills the flat gradient buffer
        (with the gradients of ``loss_scale`` times the loss: fp16's loss scaling)."""
        loss, dz = self.loss(self.logits(x), targets, self.output)
        if loss_scale != 1.0:
            dz = dz * np.asarray(loss_scale, dz.dtype)
        store, rounds = self.arith.store, self.arith.round_outputs
        for layer in reversed(self.layers):
            if rounds:
                dz = store(dz)
            dz = layer.backward(dz)
            if dz is None:
                break
        return loss

    def weights(self):
        """Copies, each layer's in the order it was given (a residual block's moving
        statistics among its other parameters, not after them)."""
        return [{name: {**params, **state}[name].copy() for name in names}
                for names, params, state in zip(self._names, self._params, self._state)]

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


def protect_kept_outputs(layers: list) -> None:
    """An activation that works in place right after one that keeps its output
    for backward (a dense layer's sigmoid, then an activation layer's tanh,
    say), with only views or pass-throughs between them, works on a copy:
    in place, it would overwrite what the first one's backward reads. Inside
    residual blocks too."""
    kept = False
    for layer in layers:
        if isinstance(layer, ResidualLayer):
            protect_kept_outputs(layer.layers)
            protect_kept_outputs(layer.shortcut)
        if isinstance(layer, ActivationLayer) and layer.name != "linear":
            if kept and layer.name in WRITES_INPUT:
                layer.copy_input()
            kept = layer.name in KEEPS_OUTPUT
        elif not isinstance(layer, (ActivationLayer, FlattenLayer, DropoutLayer)):  # those pass x on as it is
            kept = False


def build_network(spec: ModelSpec, weights, dtype=np.float32, seed: int = 0, arith: Arithmetic = PLAIN) -> Network:
    """The network of ``spec`` holding a copy of ``weights`` (canonical layout),
    computing in ``dtype``; ``seed`` seeds its dropout masks, ``arith`` says how
    every matmul rounds and sums (:class:`~dlbench_backends.numpy.precision.Arithmetic`)."""
    return Network(spec, weights, dtype, seed, arith)


def to_canonical(spec: ModelSpec, network: Network) -> list[dict]:
    """The network's weights (copies; NumPy's layouts are the canonical ones)."""
    return network.weights()


def from_canonical(spec: ModelSpec, network: Network, weights) -> Network:
    """``network`` holding ``weights``, copied in place into its buffers."""
    network.set_weights(weights)
    return network
