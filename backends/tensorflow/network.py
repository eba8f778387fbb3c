"""The TensorFlow backend's network: a ``keras.Sequential`` built from
``spec.logit_layers()``: Dense, Conv1D/Conv2D (integer padding ``p`` as
ZeroPadding1D/2D then a "valid" convolution; "same" is TensorFlow's own),
MaxPooling/AveragePooling 1D/2D, GlobalAveragePooling2D and, for the global
maximum, a max-pool over the whole input then Flatten (its gradient to the
first maximum), Flatten, Dropout, BatchNormalization, Activation (Keras's
activation functions with the spec's parameters written out:
:func:`keras_activation`); ``use_bias`` as it is. Keras's layouts are the canonical ones (Dense kernel
``(in, out)``, Conv kernel ``(k..., in, filters)``, channels-last, row-major
Flatten; BatchNormalization ``gamma, beta, moving_mean, moving_variance`` with
the same momentum convention and biased batch variance), so the initial
weights are assigned as they are. Dropout masks come from Keras's seeded
generator (seed ``options.seed`` plus the layer index): reproducible, but not
the NumPy backend's masks, so only ``rate = 0`` can agree with it step by step;
each data-parallel replica draws its own (:class:`ReplicaDropout`).

Precision: the layers are built under the precision's Keras dtype policy
(:mod:`~dlbench_backends.tensorflow.precision`).

Data parallel (built inside a ``tf.distribute.MirroredStrategy``'s scope, see
:mod:`~dlbench_backends.tensorflow.trainer`): BatchNormalization takes its
batch statistics over each replica's slice (``synchronized=False``, Keras's
default), or over the global batch with ``synchronized_batchnorm`` (Keras 3's
``synchronized=True``: all-reduced sums of x and x^2, the variance as
E[x^2] - E[x]^2, which rounds differently from ``tf.nn.moments``'s
mean of squared deviations when the mean is large beside the spread).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from dlbench.network import (ACTIVATION_ALPHA, GLOBAL_POOLS, TRANSFORMER_LAYERS, Activation, AveragePool1D,
                          AveragePool2D, BatchNormalization, Conv1D, Conv2D, Dense, Dropout, Flatten, MaxPool1D,
                          MaxPool2D, ModelSpec)
from dlbench.network.precision import PRECISIONS
from dlbench.network.sequence import SEQUENCE_LAYERS, takes_tokens
from dlbench_backends.tensorflow.core import framework
from dlbench_backends.tensorflow.precision import dtype_policy
from dlbench_backends.tensorflow.sequence import sequence_layers
from dlbench_backends.tensorflow.transformer import layer_variable, transformer_layers

tf, keras = framework()


def keras_activation(name: str, alpha: float | None = None):
    """The Keras activation of ``name``, Keras's own functions throughout, with the
    spec's parameters written out where Keras's defaults differ: gelu and gelu_tanh
    ``approximate=True``, gelu_erf ``approximate=False``; leaky_relu's
    ``negative_slope`` (Keras's default is 0.2, the spec's 0.01) and elu's ``alpha``
    (``alpha``, or the spec's default if None)."""
    alpha = ACTIVATION_ALPHA.get(name) if alpha is None else alpha
    special = {"gelu": functools.partial(keras.activations.gelu, approximate=True),
               "gelu_tanh": functools.partial(keras.activations.gelu, approximate=True),
               "gelu_erf": functools.partial(keras.activations.gelu, approximate=False),
               "leaky_relu": functools.partial(keras.activations.leaky_relu, negative_slope=alpha),
               "elu": functools.partial(keras.activations.elu, alpha=alpha)}
    return special.get(name, name)

ZERO_INIT = {"kernel_initializer": "zeros", "bias_initializer": "zeros"}


def global_pool_layers(layer, input_shape) -> list:
    """GlobalAveragePooling2D for the mean; the maximum as a max-pool over the whole
    input then a flatten, whose gradient goes to the first maximum as the spec's
    (GlobalMaxPooling's ``reduce_max`` would split it evenly among ties)."""
    k = keras.layers
    if layer.kind == "average":
        return [k.GlobalAveragePooling2D()]
    pool = k.MaxPooling1D if layer.ndim == 1 else k.MaxPooling2D
    return [pool(tuple(input_shape[:-1]), padding="valid"), k.Flatten()]


class ReplicaDropout(keras.layers.Dropout):
    """Keras's Dropout, with each replica of a tf.distribute strategy drawing
    its own masks: the replica's ``replica_id_in_sync_group`` is added to the
    second word of the seed the layer's generator draws (Keras's own
    arithmetic otherwise: ``stateless_dropout`` with the seed cast as Keras
    casts it). Replica 0, and a model outside any strategy, draw Keras's own
    masks; without this every replica's generator, mirrored from one seed,
    would draw the same."""

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return tf.zeros_like(inputs)
        seed = self.seed_generator.next()
        replica = tf.distribute.get_replica_context()
        offset = 0 if replica is None else replica.replica_id_in_sync_group
        seed = seed + tf.cast(tf.stack([0, offset]), seed.dtype)
        if seed.dtype != tf.int32:  # what stateless ops take, as Keras's TF backend makes it
            seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed)


def keras_layers(layer, seed: int, synchronized_batchnorm: bool = False, input_shape=None) -> list:
    """The Keras layers that compute one spec layer (whose input is ``input_shape``);
    the last one holds its parameters. ``synchronized_batchnorm``: BatchNormalization's
    statistics over all replicas of a MirroredStrategy (only there: outside one,
    Keras's synchronized moments are another formula for the same batch)."""
    k = keras.layers
    if type(layer) in TRANSFORMER_LAYERS:
        inner = functools.partial(keras_layers, synchronized_batchnorm=synchronized_batchnorm)
        return transformer_layers(layer, seed, inner)
    if isinstance(layer, Dense):
        return [k.Dense(layer.units, activation=keras_activation(layer.activation), use_bias=layer.use_bias,
                        **ZERO_INIT)]
    if isinstance(layer, (Conv1D, Conv2D)):
        conv, zero_padding = (k.Conv1D, k.ZeroPadding1D) if layer.ndim == 1 else (k.Conv2D, k.ZeroPadding2D)
        explicit = not isinstance(layer.padding, str)  # p zeros on both sides, then a valid convolution
        padding = [zero_padding(layer.padding)] if explicit and layer.padding else []
        return padding + [conv(layer.filters, layer.kernel_size, strides=layer.strides,
                               padding="valid" if explicit else layer.padding,
                               activation=keras_activation(layer.activation), use_bias=layer.use_bias,
                               **ZERO_INIT)]
    pools = {MaxPool1D: k.MaxPooling1D, MaxPool2D: k.MaxPooling2D,
             AveragePool1D: k.AveragePooling1D, AveragePool2D: k.AveragePooling2D}
    if type(layer) in pools:
        return [pools[type(layer)](layer.pool_size, strides=layer.strides, padding="valid")]
    if isinstance(layer, GLOBAL_POOLS):
        return global_pool_layers(layer, input_shape)
    if isinstance(layer, Flatten):
        return [k.Flatten()]
    if isinstance(layer, Dropout):
        return [ReplicaDropout(layer.rate, seed=seed)]
    if isinstance(layer, BatchNormalization):
        return [k.BatchNormalization(momentum=layer.momentum, epsilon=layer.epsilon,
                                     synchronized=synchronized_batchnorm)]
    if isinstance(layer, Activation):
        return [k.Activation(keras_activation(layer.activation, layer.alpha))]
    if isinstance(layer, SEQUENCE_LAYERS):
        return sequence_layers(layer)
    raise NotImplementedError(f"the tensorflow backend cannot build {layer.type!r} layers")


class Network(NamedTuple):
    """The built network: the ``keras.Sequential`` and, per spec layer, a dict
    of its ``tf.Variable``s by canonical name (MirroredVariables when built in
    a strategy's scope)."""

    model: object
    params: list


def build_network(spec: ModelSpec, weights, seed: int = 0, precision: str = PRECISIONS[0],
                  synchronized_batchnorm: bool = False) -> Network:
    """keras.Sequential of the logit layers, holding exactly ``weights``, under
    ``precision``'s dtype policy, with its variables by canonical name."""
    with dtype_policy(precision):
        per_layer = [keras_layers(layer, seed + i, synchronized_batchnorm, in_shape)
                     for i, (layer, (in_shape, _)) in enumerate(zip(spec.logit_layers(), spec.shapes))]
        inputs = keras.Input(spec.input_shape, dtype="int64" if takes_tokens(spec) else "float32")
        model = keras.Sequential([inputs, *(k for layers in per_layer for k in layers)])
    params = []
    for layers, layer_weights in zip(per_layer + [[]], weights):
        variables = {}
        for name, value in layer_weights.items():
            # kernel, bias, gamma, beta, moving_mean, moving_variance, embeddings, recurrent_kernel, ...
            variable = layer_variable(layers[-1], name)
            variable.assign(value)
            variables[name] = variable.value  # the tf.Variable behind the Keras variable
        params.append(variables)
    return Network(model, params)


def to_canonical(spec: ModelSpec, network: Network) -> list[dict]:
    """The network's weights (Keras's layouts are the canonical ones: host copies, as they are)."""
    return [{name: v.numpy().copy() for name, v in layer.items()} for layer in network.params]


def from_canonical(spec: ModelSpec, network: Network, weights) -> Network:
    """``network`` holding ``weights``, assigned in place (every replica's copy under a strategy)."""
    for layer, given in zip(network.params, weights):
        for name, variable in layer.items():
            variable.assign(np.asarray(given[name], np.float32))
    return network
