"""The Paddle backend's network: ``paddle.nn`` layers built from the spec and
the canonical weights, run channels-last (NHWC), the spec's own order, so that
inputs, Flatten and a Dense after it need no permutation.

Every spec layer becomes a few Paddle layers, the last of which holds its
parameters. What is pinned against Paddle's defaults:

* Dense: ``nn.Linear``, whose weight is (in, out): the canonical kernel as it is.
* Conv1D/Conv2D: ``nn.Conv2D(data_format="NHWC")``; its weight is
  (F, C, kh, kw) whatever the data format, the canonical (kh, kw, C, F)
  permuted. A Conv1D (and a 1-D pooling) runs on its (N, L, C) signal as an
  image of height 1 (:class:`AsImage`). Padding: the explicit (before, after) pairs of
  TensorFlow's "same" (:func:`dlbench.plugin.helpers.padding_pairs_2d`).
* Max/AveragePool: ``nn.MaxPool2D`` / ``nn.AvgPool2D`` in NHWC, no padding.
* Global pooling: the mean over the spatial axes; the maximum through
  ``argmax`` (the first maximum) and ``take_along_axis``, so its gradient goes
  to the first maximum only, as in the reference (``paddle.max``'s would be
  shared among ties).
* BatchNormalization: :class:`BatchNorm`, ``F.batch_norm`` whose momentum is
  Keras's (weight of the old statistics) and whose moving variance follows
  the biased batch variance.
* Dropout: ``F.dropout`` (``upscale_in_train``), the masks from Paddle's
  generator, which the trainer seeds and keeps apart (see the trainer).
* Activations: Paddle's own (:func:`activation`).
"""

from __future__ import annotations

import numpy as np
import paddle
from paddle import nn
from paddle.nn import functional as F

from dlbench.network import (ACTIVATION_ALPHA, GLOBAL_POOLS, TRANSFORMER_LAYERS, Activation, AveragePool1D,
                             AveragePool2D, BatchNormalization, Conv1D, Conv2D, Dense, Dropout, Flatten, MaxPool1D,
                             MaxPool2D, ModelSpec, Residual, activation_alpha)
from dlbench.network.sequence import SEQUENCE_LAYERS
from dlbench.plugin.helpers import as_2d, padding_pairs_2d
from dlbench_paddle import sequence, transformer


def activation(name: str, alpha: float | None = None):
    """The activation as a function (identity for linear): Paddle's own, with
    the spec's parameters set (leaky_relu's slope and elu's scale ``alpha``;
    GELU exact or tanh-approximated as named; softmax over the last axis,
    the channels of every NHWC tensor)."""
    alpha = ACTIVATION_ALPHA.get(name) if alpha is None else alpha
    table = {
        "linear": lambda x: x,
        "relu": F.relu,
        "sigmoid": F.sigmoid,
        "tanh": paddle.tanh,
        "softmax": lambda x: F.softmax(x, axis=-1),
        "gelu": lambda x: F.gelu(x, approximate=True),
        "gelu_tanh": lambda x: F.gelu(x, approximate=True),
        "gelu_erf": lambda x: F.gelu(x, approximate=False),
        "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=alpha),
        "elu": lambda x: F.elu(x, alpha=alpha),
        "silu": F.silu,
    }
    return table[name]


class Lambda(nn.Layer):
    """A parameterless function as a layer (an activation, a flatten)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class AsImage(nn.Layer):
    """A 2-D layer run on a 1-D signal (N, L, C) as an image of height 1 (N, 1, L, C)."""

    def __init__(self, inner: nn.Layer):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.unsqueeze(1)).squeeze(1)


class GlobalPool(nn.Layer):
    """Global average or max pooling to (N, C) over every axis between batch and channels."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        flat = x.reshape([x.shape[0], -1, x.shape[-1]])
        if self.kind == "average":
            return flat.mean(axis=1)
        first = paddle.argmax(flat, axis=1, keepdim=True)  # the first maximum, as the reference's gradient
        return paddle.take_along_axis(flat, first, axis=1).squeeze(1)


class InvertedDropout(nn.Layer):
    """x * mask / (1 - rate) while training, the identity otherwise."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        return F.dropout(x, p=self.rate, training=self.training, mode="upscale_in_train")


class BatchNorm(nn.Layer):
    """Batch normalization over the last axis with Keras's conventions, through
    ``F.batch_norm`` (channels last: "NHWC" for images, "NLC" for sequences,
    "NC" for features): its ``momentum`` weighs the old moving statistics and
    the moving variance follows the biased batch variance. With one value per
    channel Paddle leaves x unnormalized and the statistics as they were; the
    reference's x_hat is 0 there (the output beta) and the moving statistics
    move to x and 0, which :meth:`_single` computes."""

    FORMATS = {2: "NC", 3: "NLC", 4: "NHWC"}

    def __init__(self, channels: int, momentum: float, epsilon: float):
        super().__init__()
        self.momentum, self.epsilon = momentum, epsilon
        self.gamma = self.create_parameter([channels], default_initializer=nn.initializer.Constant(1.0))
        self.beta = self.create_parameter([channels], is_bias=True)
        self.register_buffer("moving_mean", paddle.zeros([channels]))
        self.register_buffer("moving_variance", paddle.ones([channels]))

    def forward(self, x):
        if self.training and int(np.prod(x.shape[:-1])) == 1:
            return self._single(x)
        return F.batch_norm(x, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                            training=self.training, momentum=self.momentum, epsilon=self.epsilon,
                            data_format=self.FORMATS[x.ndim])

    def _single(self, x):
        m = self.momentum
        with paddle.no_grad():  # paddle.assign into a buffer: in place in dygraph and under to_static
            paddle.assign(m * self.moving_mean + (1.0 - m) * x.reshape([-1]), output=self.moving_mean)
            paddle.assign(m * self.moving_variance, output=self.moving_variance)
        return (x - x) * self.gamma * self.epsilon ** -0.5 + self.beta


def conv_layer(layer, in_shape) -> nn.Layer:
    """``nn.Conv2D`` in NHWC with the layer's explicit padding pairs (a Conv1D over a height of 1)."""
    pairs = padding_pairs_2d(layer, in_shape)
    return nn.Conv2D(in_shape[-1], layer.filters, as_2d(layer, layer.kernel_size), stride=as_2d(layer, layer.strides),
                     padding=[[0, 0], *map(list, pairs), [0, 0]], bias_attr=None if layer.use_bias else False,
                     data_format="NHWC")


def _image_layer(layer, in_shape) -> nn.Layer:
    """The NHWC convolution or pooling of a Conv/Pool spec layer (a 1-D one over a height of 1)."""
    if isinstance(layer, (Conv1D, Conv2D)):
        return conv_layer(layer, in_shape)
    pool = nn.MaxPool2D if isinstance(layer, (MaxPool1D, MaxPool2D)) else nn.AvgPool2D
    return pool(as_2d(layer, layer.pool_size), stride=as_2d(layer, layer.strides), data_format="NHWC")


def layer_modules(layer, in_shape) -> list:
    """The Paddle layers computing one spec layer (without its activation); the last holds its parameters."""
    if type(layer) in TRANSFORMER_LAYERS:
        return transformer.transformer_modules(layer, in_shape, with_activation)
    if isinstance(layer, SEQUENCE_LAYERS):
        return sequence.sequence_modules(layer, in_shape)
    if isinstance(layer, Dense):
        return [nn.Linear(in_shape[-1], layer.units, bias_attr=None if layer.use_bias else False)]
    if isinstance(layer, (Conv1D, Conv2D, MaxPool1D, MaxPool2D, AveragePool1D, AveragePool2D)):
        image = _image_layer(layer, in_shape)
        return [AsImage(image) if layer.ndim == 1 else image]
    if isinstance(layer, GLOBAL_POOLS):
        return [GlobalPool(layer.kind)]
    if isinstance(layer, Flatten):
        return [nn.Flatten(1)]
    if isinstance(layer, Dropout):
        return [InvertedDropout(layer.rate)] if layer.rate > 0 else []
    if isinstance(layer, BatchNormalization):
        return [BatchNorm(in_shape[-1], layer.momentum, layer.epsilon)]
    if isinstance(layer, Activation):
        return []
    raise NotImplementedError(f"the paddle backend cannot build {layer.type!r} layers")


def with_activation(layer, in_shape) -> tuple[list, object]:
    """(the layers of one spec layer followed by its activation, the one holding its parameters)."""
    parts = layer_modules(layer, in_shape)
    holder = parts[-1] if parts else None
    name = getattr(layer, "activation", "linear")
    act = [] if name == "linear" else [Lambda(activation(name, activation_alpha(layer)))]
    return parts + act, holder


def build_network(spec: ModelSpec, weights) -> tuple[nn.Sequential, dict]:
    """(nn.Sequential of the logit layers holding exactly ``weights``, {spec layer index: its holder})."""
    layers, holders = [], {}
    for i, (layer, (in_shape, _)) in enumerate(zip(spec.logit_layers(), spec.shapes)):
        parts, holder = with_activation(layer, in_shape)
        layers.extend(parts)
        if weights[i]:
            holders[i] = holder
            load_weights(holder, layer, weights[i])
    return nn.Sequential(*layers), holders


def holder_tensors(holder, layer) -> dict[str, list]:
    """One layer's parameters and moving statistics by canonical name, each the
    list of Paddle tensors it is made of (a GRU's bias is two)."""
    if type(layer) in TRANSFORMER_LAYERS:
        return transformer.canonical_tensors(holder, layer, holder_tensors)
    if isinstance(layer, SEQUENCE_LAYERS):
        return sequence.sequence_tensors(holder, layer)
    if isinstance(layer, (Dense, Conv1D, Conv2D)):
        holder = getattr(holder, "inner", holder)  # a Conv1D's AsImage
        return {"kernel": [holder.weight], **({"bias": [holder.bias]} if layer.use_bias else {})}
    return {name: [getattr(holder, name)] for name in ("gamma", "beta", "moving_mean", "moving_variance")}


def from_canonical(layer, name: str, value: np.ndarray) -> list[np.ndarray]:
    """A canonical array as the arrays of the Paddle tensors it is made of (their layouts)."""
    if isinstance(layer, Residual):
        return from_canonical(*layer.part(name), value)
    value = np.asarray(value, np.float32)
    if isinstance(layer, SEQUENCE_LAYERS):
        return sequence.from_canonical(layer, name, value)
    if name == "kernel" and isinstance(layer, (Conv1D, Conv2D)):  # (kh, kw, C, F) -> (F, C, kh, kw)
        return [(value[None] if layer.ndim == 1 else value).transpose(3, 2, 0, 1)]
    return [value]


def to_canonical(layer, name: str, arrays: list[np.ndarray]) -> np.ndarray:
    """The inverse of :func:`from_canonical`: a C-contiguous float32 canonical copy."""
    if isinstance(layer, Residual):
        return to_canonical(*layer.part(name), arrays)
    if isinstance(layer, SEQUENCE_LAYERS):
        value = sequence.to_canonical(layer, name, arrays)
    elif name == "kernel" and isinstance(layer, (Conv1D, Conv2D)):
        value = arrays[0].transpose(2, 3, 1, 0)
        value = value[0] if layer.ndim == 1 else value
    else:
        value = arrays[0]
    return np.ascontiguousarray(value, np.float32).copy()


def load_weights(holder, layer, weights: dict) -> None:
    """Copy one layer's canonical weights into its Paddle tensors."""
    tensors = holder_tensors(holder, layer)
    for name, value in weights.items():
        for tensor, array in zip(tensors[name], from_canonical(layer, name, value)):
            tensor.set_value(np.ascontiguousarray(array))


def holder_weights(holder, layer) -> dict:
    """One layer's weights in the canonical layouts (host copies)."""
    return {name: to_canonical(layer, name, [t.numpy() for t in tensors])
            for name, tensors in holder_tensors(holder, layer).items()}
