"""The JAX backend's network: a pure forward function of (params, stats, x)
built layer by layer from the spec, with the conv and max-pool gradients
XLA:CPU runs fast inside a loop. See :mod:`dlbench_backends.jax`
for the layouts and the training loop."""

import functools
import itertools
import math

import numpy as np

from dlbench.errors import InputError
from dlbench.spec.layers import conv_output_length
from dlbench.spec import (PARAMETERS_TRAINED, Activation, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D,
                          Conv2D, Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, ModelSpec, layer_activation)


@functools.cache
def _jax():
    import jax
    import jax.numpy  # noqa: F401

    return jax



# ------------------------------------------------------------------ the network
def activation(name: str):
    jax = _jax()
    return {"linear": lambda x: x, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid,
            "tanh": jax.numpy.tanh, "softmax": lambda x: jax.nn.softmax(x, axis=-1)}[name]


def split_weights(weights):
    """(trained params, moving statistics): per layer, the names of
    ``PARAMETERS_TRAINED`` and the others (BatchNormalization's moving_mean
    and moving_variance), as private float32 copies."""
    params = [{k: np.array(v, np.float32) for k, v in layer.items() if k in PARAMETERS_TRAINED}
              for layer in weights]
    stats = [{k: np.array(v, np.float32) for k, v in layer.items() if k not in PARAMETERS_TRAINED}
             for layer in weights]
    return params, stats


def dense_layer(layer, in_shape, precision, custom_vjp: bool = True):
    jnp = _jax().numpy

    def apply(p, s, x, training, key):
        return jnp.dot(x, p["kernel"], precision=precision) + p["bias"], s
    return apply


def conv_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """lax.conv_general_dilated on channels-last inputs with the canonical kernel
    as HWIO (WIO); padding as explicit (before, after) pairs, TF "same" included."""
    pads = [conv_output_length(n, k, s, layer.padding)[1:]
            for n, k, s in zip(in_shape[:-1], layer.kernel_size, layer.strides)]
    conv = make_conv(in_shape, layer.kernel_size, layer.strides, pads, precision, custom_vjp)

    def apply(p, s, x, training, key):
        return conv(x, p["kernel"]) + p["bias"], s
    return apply


def make_conv(in_shape, kernel_size, strides, pads, precision, custom_vjp: bool = True):
    """conv(x, kernel) for x (batch, *spatial, C) and kernel (*kernel_size, C, F).

    With ``custom_vjp``, the gradients are written as two more convolutions
    in the same channels-last form (batch first, features last, kernel
    (*spatial, in, out), no window reversal), with explicit transposes:

        dE/dx: conv(dE/dy, flip(K) with in/out swapped), input dilated by the
               strides, padded by (k - 1 - before, ...), i.e. the transposed conv;
        dE/dK: conv(x as (C, *spatial, batch), dE/dy as (*out, batch, F)),
               kernel dilated by the strides -> (C, *k, F), transposed back.

    XLA:CPU runs only that form on its Eigen convolution kernels; JAX's own
    transpose rules emit feature/batch-swapped dimension numbers, which XLA
    rewrites to that form in the entry computation only, so inside the
    window's while loop they ran as naive loops, several times slower.
    """
    jax = _jax()
    lax, jnp = jax.lax, jax.numpy
    nd = len(kernel_size)
    numbers = ("NWC", "WIO", "NWC") if nd == 1 else ("NHWC", "HWIO", "NHWC")
    spatial = tuple(in_shape[:-1])
    out = tuple((n + pb + pa - k) // s + 1 for n, k, s, (pb, pa) in zip(spatial, kernel_size, strides, pads))
    # padded input positions the windows reach: the rest gets a zero gradient
    used = tuple((o - 1) * s + k for o, k, s in zip(out, kernel_size, strides))

    def forward(x, kernel):
        return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=numbers, precision=precision)

    if not custom_vjp:
        return forward

    def grad_input(g, kernel):
        flipped = jnp.swapaxes(jnp.flip(kernel, axis=tuple(range(nd))), -1, -2)  # (*k, F, C)
        lo = [k - 1 - pb for k, (pb, _) in zip(kernel_size, pads)]
        hi = [k - 1 + n + pb - u for k, n, (pb, _), u in zip(kernel_size, spatial, pads, used)]
        dx = lax.conv_general_dilated(g, flipped, (1,) * nd, [(max(a, 0), max(b, 0)) for a, b in zip(lo, hi)],
                                      lhs_dilation=strides, dimension_numbers=numbers, precision=precision)
        if any(a < 0 or b < 0 for a, b in zip(lo, hi)):  # padding wider than the kernel: crop instead
            dx = dx[(slice(None), *(slice(max(-a, 0), max(-a, 0) + n) for a, n in zip(lo, spatial)))]
        return dx

    def grad_kernel(x, g):
        # the windows read padded positions [0, used): x's part of them, padded
        before = [min(pb, u) for u, (pb, _) in zip(used, pads)]
        ends = [min(max(u - pb, 0), n) for n, u, (pb, _) in zip(spatial, used, pads)]
        if 0 in ends:  # every window lies in the padding
            return jnp.zeros((*kernel_size, x.shape[-1], g.shape[-1]), g.dtype)
        if any(e < n for e, n in zip(ends, spatial)):
            x = x[(slice(None), *(slice(0, e) for e in ends))]
        padding = [(b, u - b - e) for u, b, e in zip(used, before, ends)]
        lhs = jnp.transpose(x, (nd + 1, *range(1, nd + 1), 0))  # (C, *spatial, B)
        rhs = jnp.transpose(g, (*range(1, nd + 1), 0, nd + 1))  # (*out, B, F)
        dk = lax.conv_general_dilated(lhs, rhs, (1,) * nd, padding, rhs_dilation=strides,
                                      dimension_numbers=numbers, precision=precision)  # (C, *k, F)
        return jnp.transpose(dk, (*range(1, nd + 1), 0, nd + 1))

    conv = jax.custom_vjp(forward)
    conv.defvjp(lambda x, kernel: (forward(x, kernel), (x, kernel)),
                lambda res, g: (grad_input(g, res[1]), grad_kernel(res[0], g)))
    return conv


def pool_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """lax.reduce_window over (1, *pool_size, 1) windows, no padding. The max's
    gradient goes to the first maximum of each window (see ``make_max_pool``),
    the average's is spread evenly."""
    jax = _jax()
    lax = jax.lax
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


def make_max_pool(in_shape, pool_size, strides, custom_vjp: bool = True):
    """pool(x): the maximum of every window, lax.reduce_window.

    Its gradient goes to the first maximum of each window in row-major
    order, as NumPy's argmax. JAX's own rule (XLA select_and_scatter with >=,
    also the first maximum) is expanded by XLA:CPU into a scatter that took
    most of a small CNN's step; with ``custom_vjp`` the gradient is instead
    found offset by offset (the first offset holding the window's maximum,
    by strict comparisons of the window's own slices) and put back with
    strided (interior) lax.pads: pool_size elementwise passes that XLA fuses.
    """
    jax = _jax()
    lax, jnp = jax.lax, jax.numpy
    window, wstrides = (1, *pool_size, 1), (1, *strides, 1)
    spatial = tuple(in_shape[:-1])
    out = tuple((n - k) // s + 1 for n, k, s in zip(spatial, pool_size, strides))

    def forward(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, window, wstrides, "VALID")

    if not custom_vjp:
        return forward

    def backward(x, g):
        # which offset of each window holds its first maximum, found from the window
        # slices themselves (strictly greater wins, so ties go to the first): never by
        # equality with the forward's maximum, which XLA may compute in a fusion of its
        # own, one rounding away (after a BatchNormalization, say), dropping gradients
        offsets = list(itertools.product(*(range(k) for k in pool_size)))
        slices = []
        for offset in offsets:
            extent = [a + (o - 1) * s + 1 for a, o, s in zip(offset, out, strides)]
            slices.append((offset, extent, lax.slice(x, (0, *offset, 0), (x.shape[0], *extent, x.shape[-1]),
                                                     wstrides)))
        best, first = slices[0][2], jnp.zeros(slices[0][2].shape, jnp.int32)
        for k, (_, _, values) in enumerate(slices[1:], start=1):
            better = values > best
            best, first = jnp.where(better, values, best), jnp.where(better, k, first)
        dx = None
        for k, (offset, extent, _) in enumerate(slices):
            spread = lax.pad(jnp.where(first == k, g, 0.0), jnp.zeros((), g.dtype),
                             [(0, 0, 0), *((a, n - e, s - 1) for a, n, e, s in zip(offset, spatial, extent, strides)),
                              (0, 0, 0)])
            dx = spread if dx is None else dx + spread
        return (dx,)

    def forward_with_residuals(x):
        return forward(x), x

    pool = jax.custom_vjp(forward)
    pool.defvjp(forward_with_residuals, backward)
    return pool


def flatten_layer(layer, in_shape, precision, custom_vjp: bool = True):
    def apply(p, s, x, training, key):
        return x.reshape(x.shape[0], -1), s  # channels-last row-major: the canonical order
    return apply


def dropout_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """Inverted dropout: keep where uniform >= rate, scale kept values by
    float32(1 / (1 - rate)); the identity at inference and for rate 0."""
    jax = _jax()
    jnp = jax.numpy
    rate = layer.rate
    scale = np.float32(1.0) / np.float32(1.0 - rate)

    def apply(p, s, x, training, key):
        if not training or rate == 0:
            return x, s
        keep = jax.random.uniform(key, x.shape, jnp.float32) >= rate
        return jnp.where(keep, x * scale, 0.0), s
    return apply


def batchnorm_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """Training: batch mean and biased variance over every axis but the last,
    and new moving statistics ``moving * momentum + batch * (1 - momentum)``
    (returned, not differentiated); inference: the moving statistics."""
    jnp = _jax().numpy
    axes = tuple(range(len(in_shape)))  # the batch axis and the spatial ones
    m, eps = layer.momentum, layer.epsilon

    def apply(p, s, x, training, key):
        if training:
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
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
            Dropout: dropout_layer, BatchNormalization: batchnorm_layer, Activation: identity_layer}


def check_supported(spec: ModelSpec) -> None:
    for i, layer in enumerate(spec.layers):
        if type(layer) not in BUILDERS:
            raise InputError(f"the jax backend does not support {layer.type!r} layers", field=f"layers[{i}]")


def make_forward(spec: ModelSpec, precision, seed: int = 0, custom_vjp: bool = True):
    """forward(params, stats, x, training, step) -> (logits, new stats): the
    layers of ``spec.logit_layers()``. Dropout layer i draws its mask with
    the key ``fold_in(fold_in(key(seed), step), i)``: the same seed gives the
    same masks, whatever the windows or chunks the steps run in."""
    jax = _jax()
    layers = [(BUILDERS[type(layer)](layer, in_shape, precision, custom_vjp),
               activation(layer_activation(layer) or "linear"))
              for layer, (in_shape, _) in zip(spec.logit_layers(), spec.shapes)]
    dropout = any(isinstance(layer, Dropout) and layer.rate > 0 for layer in spec.logit_layers())

    def forward(params, stats, x, training, step=None):
        step_key = (jax.random.fold_in(jax.random.key(seed), step)
                    if training and dropout and step is not None else None)
        new_stats = []
        for i, ((apply, f), p, s) in enumerate(zip(layers, params, stats)):
            key = None if step_key is None else jax.random.fold_in(step_key, i)
            x, s = apply(p, s, x, training, key)
            new_stats.append(s)
            x = f(x)
        return x, new_stats + list(stats[len(new_stats):])  # a final Activation layer: no stats

    return forward


def categorical_crossentropy(z, labels, f):
    jax = _jax()
    picked = jax.numpy.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
    return jax.numpy.mean(jax.nn.logsumexp(z, axis=-1) - picked)


def binary_crossentropy(z, targets, f):
    jnp = _jax().numpy
    return jnp.mean(jnp.maximum(z, 0) - z * targets + jnp.log1p(jnp.exp(-jnp.abs(z))))


def mse(z, targets, f):
    jnp = _jax().numpy
    return jnp.mean(jnp.square(f(z) - targets))


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}


