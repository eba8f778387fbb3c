"""Layer specs: frozen dataclasses that validate themselves and infer shapes.

Shapes exclude the batch axis and are channels-last: a 1-D signal is
``(length, channels)``, an image ``(height, width, channels)``. Canonical
parameter layouts (what :mod:`dlbench.network.init` produces and every
backend converts from): Dense kernel ``(in, out)``; Conv1D kernel
``(k, in_channels, filters)``; Conv2D kernel ``(kh, kw, in_channels, filters)``;
biases ``(units or filters,)`` (none with ``use_bias = false``, e.g. before a
BatchNormalization, whose beta takes the bias's place); BatchNormalization ``gamma, beta,
moving_mean, moving_variance`` of shape ``(channels,)``.

Padding of convolutions: ``"valid"`` (none), ``"same"`` with TensorFlow's
semantics (output length ``ceil(n / stride)``; the total padding
``max((out - 1) * stride + k - n, 0)`` is split with the extra element at the
end, i.e. bottom/right), or an integer ``p`` (``p`` zeros on both sides).
Pooling takes ``pool_size`` and ``strides`` (default: ``pool_size``), no padding.
A max-pool's gradient goes to the first maximum of each window (row-major).

Global pooling (Lin, Chen & Yan 2014, "Network In Network"):
``global_average_pool2d`` and ``global_max_pool1d`` / ``global_max_pool2d``
reduce every position of ``(length, channels)`` or ``(height, width,
channels)`` to ``(channels,)``: the mean, or the maximum, whose gradient goes
to the first maximum in row-major order, as a max-pool's (torch's
``amax(dim)``, TensorFlow's ``reduce_max`` behind Keras's GlobalMaxPooling and
JAX's ``jnp.max`` split it evenly among ties instead; the backends route it
to the first). ``global_average_pool1d``, the mean over time, is in
:mod:`dlbench.network.transformer`. Keras's GlobalAveragePooling2D /
GlobalMaxPooling1D/2D, torch's ``AdaptiveAvgPool2d(1)`` /
``AdaptiveMaxPool1d/2d(1)`` then a flatten.

BatchNormalization's ``momentum`` is the weight of the *old* moving
statistics (Keras's convention): ``moving = momentum * moving + (1 - momentum)
* batch``, where the batch variance is the biased one (divided by the batch
count), as Keras does. PyTorch's ``momentum`` is ``1 - this``. Training
normalizes with the batch statistics, inference with the moving ones;
``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` over the last axis.

Activations, their formulas, slopes at 0 and defaults: :mod:`dlbench.network.activations`.

Dropout(rate) zeroes each activation with probability ``rate`` in training
and scales the rest by ``1 / (1 - rate)`` (inverted dropout); it is the
identity at inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Union

from dlbench.errors import InputError
from dlbench.network.activations import ACTIVATION_ALPHA, ACTIVATIONS, activation_alpha, layer_activation  # noqa: F401
from dlbench.network.checks import Shape, check_choice, check_number, check_positive_int, format_shape

#: the parameters the optimizer updates (every other weight, e.g. a moving statistic, it never sees)
PARAMETERS_TRAINED = ("kernel", "bias", "gamma", "beta", "embeddings", "recurrent_kernel",
                      "query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel", "value_bias",
                      "output_kernel", "output_bias", "position_embeddings")


def is_trained(name: str) -> bool:
    """Whether the parameter ``name`` is updated by the optimizer (moving
    statistics are not); a residual block's ``"<j>.<name>"`` by its last part."""
    return name.rsplit(".", 1)[-1] in PARAMETERS_TRAINED


def _check_bool(value, name: str) -> None:
    if not isinstance(value, bool):
        raise InputError(f"must be true or false, got {value!r}", field=name)


def _ints(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a list of ``n`` ints, all positive, as a tuple of ``n``."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InputError(f"must be an integer or a list of {n}, got {list(value)!r}", field=name)
        return tuple(check_positive_int(v, name) for v in value)
    return (check_positive_int(value, name),) * n


def _check_padding(padding) -> None:
    if isinstance(padding, bool) or not (padding in ("valid", "same") or (isinstance(padding, int) and padding >= 0)):
        raise InputError(f"unknown {padding!r}; expected one of same, valid, or a non-negative integer",
                         field="padding")


def conv_output_length(n: int, k: int, stride: int, padding) -> tuple[int, int, int]:
    """(output length, padding before, padding after) along one spatial axis."""
    if padding == "same":
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        return out, total // 2, total - total // 2
    pad = 0 if padding == "valid" else padding
    return (n + 2 * pad - k) // stride + 1, pad, pad


def _spatial_output(layer_type: str, input_shape: Shape, ndim: int, kernel, strides, padding) -> tuple[int, ...]:
    if len(input_shape) != ndim + 1:
        expected = "(length, channels)" if ndim == 1 else "(height, width, channels)"
        raise InputError(f"{layer_type} needs a {ndim + 1}-D input {expected}, got shape "
                         f"{format_shape(input_shape)}")
    sizes = []
    for n, k, s in zip(input_shape[:-1], kernel, strides):
        out, _, _ = conv_output_length(n, k, s, padding)
        if out < 1:
            raise InputError(f"window {k} is larger than its input {format_shape(input_shape)} "
                             f"with {padding!r} padding")
        sizes.append(out)
    return tuple(sizes)


# ------------------------------------------------------------------- dense
@dataclass(frozen=True)
class Dense:
    """y = f(x W + b); kernel W has the canonical layout (in, out). On a
    (time, features) input it applies to every timestep: (time, units).
    ``use_bias = False``: y = f(x W), and the layer has no ``bias``."""

    units: int
    activation: str = "linear"
    input_shape: Shape | None = None
    use_bias: bool = True
    type: ClassVar[str] = "dense"

    def __post_init__(self):
        check_positive_int(self.units, "units")
        check_choice(self.activation, ACTIVATIONS, "activation")
        _check_bool(self.use_bias, "use_bias")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) not in (1, 2):
            raise InputError(f"dense needs a 1-D input (features,) or a sequence (time, features), got shape "
                             f"{format_shape(input_shape)}; add a flatten layer before it")
        return (*input_shape[:-1], self.units)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"kernel": (input_shape[-1], self.units), **({"bias": (self.units,)} if self.use_bias else {})}


@dataclass(frozen=True)
class Activation:
    """y = f(x), elementwise (softmax: over the last axis); ``alpha`` for the
    activations that take one (:data:`ACTIVATION_ALPHA`), their default if not given."""

    activation: str
    input_shape: Shape | None = None
    alpha: float | None = None
    type: ClassVar[str] = "activation"

    def __post_init__(self):
        check_choice(self.activation, ACTIVATIONS, "activation")
        if self.activation not in ACTIVATION_ALPHA:
            if self.alpha is not None:
                raise InputError(f"only {' and '.join(ACTIVATION_ALPHA)} take an alpha, not {self.activation}",
                                 field="alpha")
            return
        if self.alpha is None:
            object.__setattr__(self, "alpha", ACTIVATION_ALPHA[self.activation])
        object.__setattr__(self, "alpha", check_number(self.alpha, "alpha", low=0.0, low_open=False))

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {}


# ------------------------------------------------------------ convolutions
@dataclass(frozen=True)
class _Conv:
    filters: int
    kernel_size: int | tuple = 3
    strides: int | tuple = 1
    padding: str | int = "valid"
    activation: str = "linear"
    input_shape: Shape | None = None
    use_bias: bool = True
    ndim: ClassVar[int] = 2
    type: ClassVar[str] = ""

    def __post_init__(self):
        check_positive_int(self.filters, "filters")
        object.__setattr__(self, "kernel_size", _ints(self.kernel_size, self.ndim, "kernel_size"))
        object.__setattr__(self, "strides", _ints(self.strides, self.ndim, "strides"))
        _check_padding(self.padding)
        check_choice(self.activation, ACTIVATIONS, "activation")
        _check_bool(self.use_bias, "use_bias")

    def output_shape(self, input_shape: Shape) -> Shape:
        spatial = _spatial_output(self.type, input_shape, self.ndim, self.kernel_size, self.strides, self.padding)
        return (*spatial, self.filters)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        kernel = (*self.kernel_size, input_shape[-1], self.filters)
        return {"kernel": kernel, **({"bias": (self.filters,)} if self.use_bias else {})}


@dataclass(frozen=True)
class Conv1D(_Conv):
    """y = f(conv(x, K) + b) over (length, channels); kernel (k, in, filters); no b if not ``use_bias``."""

    ndim: ClassVar[int] = 1
    type: ClassVar[str] = "conv1d"


@dataclass(frozen=True)
class Conv2D(_Conv):
    """y = f(conv(x, K) + b) over (height, width, channels); kernel (kh, kw, in, filters); no b if not ``use_bias``."""

    ndim: ClassVar[int] = 2
    type: ClassVar[str] = "conv2d"


# ---------------------------------------------------------------- pooling
@dataclass(frozen=True)
class _Pool:
    pool_size: int | tuple = 2
    strides: int | tuple | None = None
    input_shape: Shape | None = None
    ndim: ClassVar[int] = 2
    type: ClassVar[str] = ""

    def __post_init__(self):
        object.__setattr__(self, "pool_size", _ints(self.pool_size, self.ndim, "pool_size"))
        strides = self.pool_size if self.strides is None else _ints(self.strides, self.ndim, "strides")
        object.__setattr__(self, "strides", strides)

    def output_shape(self, input_shape: Shape) -> Shape:
        spatial = _spatial_output(self.type, input_shape, self.ndim, self.pool_size, self.strides, "valid")
        return (*spatial, input_shape[-1])

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {}


@dataclass(frozen=True)
class MaxPool1D(_Pool):
    """Maximum over each window (the gradient goes to the first maximum)."""

    ndim: ClassVar[int] = 1
    type: ClassVar[str] = "maxpool1d"


@dataclass(frozen=True)
class MaxPool2D(_Pool):
    """Maximum over each window (the gradient goes to the first maximum)."""

    ndim: ClassVar[int] = 2
    type: ClassVar[str] = "maxpool2d"


@dataclass(frozen=True)
class AveragePool1D(_Pool):
    """Mean over each window."""

    ndim: ClassVar[int] = 1
    type: ClassVar[str] = "averagepool1d"


@dataclass(frozen=True)
class AveragePool2D(_Pool):
    """Mean over each window."""

    ndim: ClassVar[int] = 2
    type: ClassVar[str] = "averagepool2d"


@dataclass(frozen=True)
class _GlobalPool:
    input_shape: Shape | None = None
    ndim: ClassVar[int] = 2
    kind: ClassVar[str] = ""
    type: ClassVar[str] = ""

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != self.ndim + 1:
            expected = "(length, channels)" if self.ndim == 1 else "(height, width, channels)"
            raise InputError(f"{self.type} needs a {self.ndim + 1}-D input {expected}, got shape "
                             f"{format_shape(input_shape)}")
        return (input_shape[-1],)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {}


@dataclass(frozen=True)
class GlobalAveragePool2D(_GlobalPool):
    """The mean over every position: (height, width, channels) -> (channels,)."""

    ndim: ClassVar[int] = 2
    kind: ClassVar[str] = "average"
    type: ClassVar[str] = "global_average_pool2d"


@dataclass(frozen=True)
class GlobalMaxPool1D(_GlobalPool):
    """The maximum over every position: (length, channels) -> (channels,)."""

    ndim: ClassVar[int] = 1
    kind: ClassVar[str] = "max"
    type: ClassVar[str] = "global_max_pool1d"


@dataclass(frozen=True)
class GlobalMaxPool2D(_GlobalPool):
    """The maximum over every position: (height, width, channels) -> (channels,)."""

    ndim: ClassVar[int] = 2
    kind: ClassVar[str] = "max"
    type: ClassVar[str] = "global_max_pool2d"


GLOBAL_POOLS = (GlobalAveragePool2D, GlobalMaxPool1D, GlobalMaxPool2D)


# ------------------------------------------------------------------ others
@dataclass(frozen=True)
class Flatten:
    """(..., channels) -> (prod,), in channels-last (row-major) order."""

    input_shape: Shape | None = None
    type: ClassVar[str] = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {}


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout with probability ``rate`` (training only)."""

    rate: float
    input_shape: Shape | None = None
    type: ClassVar[str] = "dropout"

    def __post_init__(self):
        check_number(self.rate, "rate", low=0.0, high=1.0, low_open=False)

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {}


@dataclass(frozen=True)
class BatchNormalization:
    """Normalization over the last axis; ``momentum`` weighs the old moving statistics."""

    momentum: float = 0.99
    epsilon: float = 1e-3
    input_shape: Shape | None = None
    type: ClassVar[str] = "batchnorm"

    def __post_init__(self):
        check_number(self.momentum, "momentum", low=0.0, high=1.0, low_open=False)
        check_number(self.epsilon, "epsilon", low=0.0)

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        c = (input_shape[-1],)
        return {"gamma": c, "beta": c, "moving_mean": c, "moving_variance": c}


Layer = Union[Dense, Activation, Conv1D, Conv2D, MaxPool1D, MaxPool2D, AveragePool1D, AveragePool2D,
              GlobalAveragePool2D, GlobalMaxPool1D, GlobalMaxPool2D, Flatten, Dropout, BatchNormalization]
LAYER_TYPES: dict[str, type] = {cls.type: cls for cls in (
    Dense, Activation, Conv1D, Conv2D, MaxPool1D, MaxPool2D, AveragePool1D, AveragePool2D, *GLOBAL_POOLS, Flatten,
    Dropout, BatchNormalization)}


from dlbench.network.sequence import SEQUENCE_LAYERS  # noqa: E402  (sequence.py needs nothing from here)

LAYER_TYPES.update({cls.type: cls for cls in SEQUENCE_LAYERS})
