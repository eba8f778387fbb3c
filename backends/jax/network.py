"""The JAX backend's network: a pure forward function of (params, stats, x)
built layer by layer from the spec.

State: the trained parameters are a pytree (per spec layer a dict, e.g.
``{"kernel", "bias"}`` or ``{"gamma", "beta"}``, ``{}`` for layers without
parameters) of float32 arrays; BatchNormalization's ``moving_mean`` and
``moving_variance`` live in a second pytree of the same structure (the
"stats"), which the forward pass returns updated in training mode and
which is never differentiated nor given to the optimizer.
:func:`to_canonical` merges the two back in the layer's canonical key order.

The module API (``docs/backends/module-api.md``): ``build_network(spec,
weights, ...)`` -> :class:`Network` (the forward function, params, stats);
``to_canonical(spec, network)``; ``from_canonical(spec, network, weights)``
returns a new Network (JAX arrays are immutable).

Layouts: the canonical ones are JAX's own, so weights go in and come out
unchanged. Activations stay channels-last, (batch, length, channels) and
(batch, height, width, channels); convolutions are ``lax.conv_general_dilated``
with dimension numbers ("NWC", "WIO", "NWC") / ("NHWC", "HWIO", "NHWC"), the
kernel (k, C, F) / (kh, kw, C, F) as is, padding given as explicit
(before, after) pairs from :func:`dlbench.network.layers.conv_output_length` (TF's
"same" puts the odd element after, which an explicit pair states for every
stride and kernel size; an integer p is (p, p)). Pooling is
``lax.reduce_window`` (max / sum divided by the window size), "VALID".
Flatten is a reshape of the channels-last array: the canonical order.
Global pooling is a mean, or the value at ``argmax`` (the first maximum,
which alone gets the gradient). A layer without a bias adds none.
The convolution's and the max-pool's gradients may be this backend's own
(:mod:`~dlbench_backends.jax.kernels`).

Training vs inference: ``train`` runs the forward pass in training mode
(BatchNormalization normalizes with the batch mean and biased variance and
updates ``moving = moving * momentum + batch * (1 - momentum)``; Dropout
keeps where ``uniform >= rate`` and scales by ``1 / (1 - rate)``),
``evaluate`` in inference mode (moving statistics; Dropout is the identity).
Dropout masks come from ``fold_in(fold_in(key(seed), step), layer index)``,
with ``seed = TrainerOptions.seed`` and the global step carried in the loop:
the same seed gives the same masks whatever the windows or chunks. Under
data parallelism each replica folds its index on the replica axis into the
step's key too, so the replicas draw their own masks (as DDP's ranks do).
"""

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlbench.errors import InputError
from dlbench.plugin.helpers import padding_pairs
from dlbench.network import (ACTIVATION_ALPHA, GLOBAL_POOLS, Activation, AveragePool1D, AveragePool2D,
                          BatchNormalization, Conv1D, Conv2D, Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, ModelSpec,
                          Residual, activation_alpha, is_trained, layer_activation)
from dlbench.network.precision import PRECISIONS
from dlbench.network.transformer import nested_layers
from dlbench_backends.jax.kernels import make_conv, make_max_pool
from dlbench_backends.jax.precision import Policy
from dlbench_backends.jax.transformer import TRANSFORMER_BUILDERS
from dlbench_backends.jax.sequence import SEQUENCE_BUILDERS


def activation(name: str, alpha: float | None = None):
    """The activation of ``name`` (``alpha``: leaky_relu's slope, elu's scale; the
    spec's default if None): jax.nn's own functions, but leaky_relu, written
    ``where(x > 0, x, alpha x)`` for the spec's slope alpha at 0
    (``jax.nn.leaky_relu`` tests ``x >= 0``: slope 1 there)."""
    alpha = ACTIVATION_ALPHA.get(name) if alpha is None else alpha
    gelu_tanh = functools.partial(jax.nn.gelu, approximate=True)
    return {"linear": lambda x: x, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid,
            "tanh": jnp.tanh, "softmax": lambda x: jax.nn.softmax(x, axis=-1),
            "gelu": gelu_tanh, "gelu_tanh": gelu_tanh,
            "gelu_erf": functools.partial(jax.nn.gelu, approximate=False),
            "leaky_relu": lambda x: jnp.where(x > 0, x, alpha * x),
            "elu": functools.partial(jax.nn.elu, alpha=alpha), "silu": jax.nn.silu}[name]


def split_weights(weights):
    """(trained params, moving statistics): per layer, the names of
    ``PARAMETERS_TRAINED`` and the others (BatchNormalization's moving_mean
    and moving_variance), as private float32 copies."""
    params = [{k: np.array(v, np.float32) for k, v in layer.items() if is_trained(k)}
              for layer in weights]
    stats = [{k: np.array(v, np.float32) for k, v in layer.items() if not is_trained(k)}
             for layer in weights]
    return params, stats


def merge_weights(names, params, stats):
    """The inverse of :func:`split_weights`: per layer, its weights in the
    order ``names`` gives, as float32 host copies."""
    return [{k: np.array({**p, **s}[k], dtype=np.float32) for k in layer_names}
            for layer_names, p, s in zip(names, params, stats)]


def dense_layer(layer, in_shape, precision, custom_vjp: bool = True):
    def apply(p, s, x, training, key):
        z = precision.dot(x, p["kernel"])
        return (z + p["bias"] if layer.use_bias else z), s
    return apply


def conv_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """lax.conv_general_dilated on channels-last inputs with the canonical kernel
    as HWIO (WIO); padding as explicit (before, after) pairs, TF "same" included."""
    conv = make_conv(in_shape, layer.kernel_size, layer.strides, padding_pairs(layer, in_shape), precision,
                     custom_vjp)

    def apply(p, s, x, training, key):
        z = conv(x, p["kernel"])
        return (z + p["bias"] if layer.use_bias else z), s
    return apply


def pool_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """lax.reduce_window over (1, *pool_size, 1) windows, no padding. The max's
    gradient goes to the first maximum of each window (see ``make_max_pool``),
    the average's is spread evenly."""
    window, strides = (1, *layer.pool_size, 1), (1, *layer.strides, 1)
    size = math.prod(layer.pool_size)

    if isinstance(layer, (MaxPool1D, MaxPool2D)):
        pool = make_max_pool(in_shape, layer.pool_size, layer.strides, custom_vjp)

        def apply(p, s, x, training, key):
            return pool(x), s
    else:
        def apply(p, s, x, training, key):
            return lax.reduce_window(x, 0.0, lax.add, window, strides, "VALID") / size, s
    return apply


def global_pool_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """The mean or the maximum over every position, (B, ..., C) -> (B, C). The
    maximum is read where ``argmax`` points (the first maximum, as NumPy's), so
    its gradient goes there alone (``jnp.max``'s would split it among ties): a
    select, no gather or scatter."""
    axes = tuple(range(1, len(in_shape)))

    def apply(p, s, x, training, key):
        if layer.kind == "average":
            return jnp.mean(x, axis=axes), s
        positions = x.reshape(x.shape[0], -1, x.shape[-1])
        first = jnp.argmax(positions, axis=1)
        chosen = jnp.arange(positions.shape[1])[None, :, None] == first[:, None, :]
        return jnp.sum(jnp.where(chosen, positions, 0.0), axis=1), s
    return apply


def flatten_layer(layer, in_shape, precision, custom_vjp: bool = True):
    def apply(p, s, x, training, key):
        return x.reshape(x.shape[0], -1), s  # channels-last row-major: the canonical order
    return apply


def dropout_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """Inverted dropout: keep where uniform >= rate, scale kept values by
    float32(1 / (1 - rate)); the identity at inference and for rate 0."""
    rate = layer.rate
    scale = np.float32(1.0) / np.float32(1.0 - rate)

    def apply(p, s, x, training, key):
        if not training or rate == 0:
            return x, s
        keep = jax.random.uniform(key, x.shape, jnp.float32) >= rate
        return jnp.where(keep, x * scale, 0.0), s
    return apply


def batchnorm_layer(layer, in_shape, precision, custom_vjp: bool = True, replica_axis: str | None = None):
    """Training: batch mean and biased variance over every axis but the last,
    and new moving statistics ``moving * momentum + batch * (1 - momentum)``
    (returned, not differentiated); inference: the moving statistics. With a
    ``replica_axis`` (synchronized BatchNorm under data parallelism) the batch
    statistics are the means over every replica's (equal) slice: the global batch's."""
    axes = tuple(range(len(in_shape)))  # the batch axis and the spatial ones
    m, eps = layer.momentum, layer.epsilon

    def batch_mean(x):
        mean = jnp.mean(x, axis=axes)
        return mean if replica_axis is None else lax.pmean(mean, replica_axis)

    def apply(p, s, x, training, key):
        if training:
            mean = batch_mean(x)
            var = batch_mean(jnp.square(x - mean))
            s = {"moving_mean": s["moving_mean"] * m + mean * (1 - m),
                 "moving_variance": s["moving_variance"] * m + var * (1 - m)}
        else:
            mean, var = s["moving_mean"], s["moving_variance"]
        inv_std = 1.0 / jnp.sqrt(var + eps)
        return (x - mean) * inv_std * p["gamma"] + p["beta"], s
    return apply


def identity_layer(layer, in_shape, precision, custom_vjp: bool = True):  # an Activation layer: its activation follows
    def apply(p, s, x, training, key):
        return x, s
    return apply


BUILDERS = {Dense: dense_layer, Conv1D: conv_layer, Conv2D: conv_layer, MaxPool1D: pool_layer,
            MaxPool2D: pool_layer, AveragePool1D: pool_layer, AveragePool2D: pool_layer, Flatten: flatten_layer,
            **{pool: global_pool_layer for pool in GLOBAL_POOLS},
            Dropout: dropout_layer, BatchNormalization: batchnorm_layer, Activation: identity_layer,
            **TRANSFORMER_BUILDERS, **SEQUENCE_BUILDERS}


def inner_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """(apply, activation) of a layer inside a residual block."""
    apply = BUILDERS[type(layer)](layer, in_shape, precision, custom_vjp)
    return apply, activation(layer_activation(layer) or "linear", activation_alpha(layer))


BUILDERS[Residual] = functools.partial(TRANSFORMER_BUILDERS[Residual], build=inner_layer)


def check_supported(spec: ModelSpec) -> None:
    for i, layer in enumerate(spec.layers):
        if type(layer) not in BUILDERS:
            raise InputError(f"the jax backend does not support {layer.type!r} layers", field=f"layers[{i}]")


class Network(NamedTuple):
    """The built network: its pure forward function and the two pytrees it takes."""

    forward: Callable
    params: list
    stats: list


def build_network(spec: ModelSpec, weights, precision: Policy | None = None, seed: int = 0, custom_vjp: bool = True,
                  replica_axis: str | None = None, dropout_axis: str | None = None) -> Network:
    """The network of ``spec`` holding private float32 copies of ``weights``,
    at ``precision`` (default fp32; see :func:`build_forward` for the other arguments)."""
    params, stats = split_weights(weights)
    forward = build_forward(spec, precision or Policy(PRECISIONS[0]), seed, custom_vjp, replica_axis, dropout_axis)
    return Network(forward, params, stats)


def to_canonical(spec: ModelSpec, network: Network) -> list[dict]:
    """The network's weights as float32 host copies, each layer's in the order
    of ``spec.param_shapes()`` (JAX's layouts are the canonical ones)."""
    return merge_weights([list(shapes) for shapes in spec.param_shapes()], network.params, network.stats)


def from_canonical(spec: ModelSpec, network: Network, weights) -> Network:
    """A Network like ``network`` holding private copies of ``weights``."""
    params, stats = split_weights(weights)
    return network._replace(params=params, stats=stats)


def build_forward(spec: ModelSpec, precision, seed: int = 0, custom_vjp: bool = True,
                  replica_axis: str | None = None, dropout_axis: str | None = None):
    """forward(params, stats, x, training, step) -> (logits, new stats): the
    layers of ``spec.logit_layers()``. Dropout layer i draws its mask with
    the key ``fold_in(fold_in(key(seed), step), i)``: the same seed gives the
    same masks, whatever the windows or chunks the steps run in; one inside
    a residual block folds in its index j within the block too.
    ``replica_axis``: the mesh axis BatchNormalization synchronizes its
    statistics over (data parallelism), None for per-replica statistics.
    ``dropout_axis``: the mesh axis of the replicas (data parallelism), whose
    index is folded into the step's key, so that each replica draws its own
    masks (as DDP's ranks and tf.distribute's replicas do); None: one process."""
    builders = {**BUILDERS, BatchNormalization: functools.partial(batchnorm_layer, replica_axis=replica_axis)}
    if replica_axis is not None and any(isinstance(inner, BatchNormalization) for layer in spec.layers
                                        if isinstance(layer, Residual) for inner in nested_layers([layer])):
        raise InputError("the jax backend synchronizes BatchNormalization statistics of top-level layers only, "
                         "not inside a residual block", field="--sync-batchnorm")
    layers = [(builders[type(layer)](layer, in_shape, precision, custom_vjp),
               activation(layer_activation(layer) or "linear", activation_alpha(layer)))
              for layer, (in_shape, _) in zip(spec.logit_layers(), spec.shapes)]
    dropout = spec.has_dropout  # inside residual blocks too: they fold their inner index into the key

    def forward(params, stats, x, training, step=None):
        step_key = (jax.random.fold_in(jax.random.key(seed), step)
                    if training and dropout and step is not None else None)
        if step_key is not None and dropout_axis is not None:
            step_key = jax.random.fold_in(step_key, lax.axis_index(dropout_axis))
        new_stats = []
        for i, ((apply, f), p, s) in enumerate(zip(layers, params, stats)):
            key = None if step_key is None else jax.random.fold_in(step_key, i)
            x, s = apply(p, s, x, training, key)
            new_stats.append(s)
            x = f(x)
        return x, new_stats + list(stats[len(new_stats):])  # a final Activation layer: no stats

    return forward
