"""torch modules -> spec layers and canonical weights, for the graph reader
(:mod:`dlbench_backends.torch.convert_graph`); the conventions are listed in
:mod:`dlbench_backends.torch.convert`.

Each converter takes the module and the :class:`Tensor` it is applied to (its
spec shape, channels-last, and how torch holds it) and returns a
:class:`Step`: the spec layers with their weights, and how torch holds the
result. A setting the spec cannot express is an ``InputError`` whose message
says what is wrong and whose ``field`` says what would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from dlbench.errors import InputError
from dlbench.network import (GRU, LSTM, Activation, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Embedding, Flatten, LayerNormalization, MaxPool1D, MaxPool2D, SelfAttention,
                          SimpleRNN, format_shape)
from dlbench.network.sequence import DIRECTIONS, Bidirectional


@dataclass(eq=False)
class Tensor:
    """A tensor of the user's network: its spec shape (channels-last, no batch
    axis; None once a part could not be read), whether torch holds it
    channels-first (C, *spatial), and for a flattened feature map torch's
    index of each spec feature."""

    shape: tuple | None
    channels_first: bool = False
    order: np.ndarray | None = None

    def torch_dims(self) -> tuple:
        return (self.shape[-1], *self.shape[:-1]) if self.channels_first else tuple(self.shape)

    def text(self) -> str:
        return format_shape(self.torch_dims())


@dataclass
class Step:
    """What a module or call computes: spec layers (with canonical weights) and
    how torch holds the result (``keep_order``: a per-feature map, which keeps a
    flattened map's feature order)."""

    parts: list = field(default_factory=list)
    channels_first: bool = False
    keep_order: bool = False
    order: np.ndarray | None = None


ACTIVATIONS = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax", "LogSoftmax": "softmax",
               "GELU": "gelu_erf", "SiLU": "silu", "LeakyReLU": "leaky_relu", "ELU": "elu"}
#: torch's GELU ``approximate`` -> the spec's form
GELU_FORMS = {"none": "gelu_erf", "tanh": "gelu_tanh"}
POOLS = {"MaxPool1d": MaxPool1D, "MaxPool2d": MaxPool2D, "AvgPool1d": AveragePool1D, "AvgPool2d": AveragePool2D}
ADAPTIVE = {"AdaptiveAvgPool1d": AveragePool1D, "AdaptiveAvgPool2d": AveragePool2D, "AdaptiveMaxPool1d": MaxPool1D,
            "AdaptiveMaxPool2d": MaxPool2D}
RNNS = {"RNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
CHANNEL_DROPOUTS = ("Dropout1d", "Dropout2d")
MODULES = ("Linear", "Conv1d", "Conv2d", *POOLS, *ADAPTIVE, "Flatten", "Dropout", *CHANNEL_DROPOUTS, "BatchNorm1d",
           "BatchNorm2d",
           "LayerNorm", "Embedding", *RNNS, "MultiheadAttention", *ACTIVATIONS, "Identity")


def host(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32, copy=True)


def flatten_order(shape: tuple) -> np.ndarray:
    """For each feature of the spec's Flatten of ``shape`` (H, W, C), its index in torch's flatten (C, H, W)."""
    torch_shape = (shape[-1], *shape[:-1])
    return np.arange(int(np.prod(shape))).reshape(torch_shape).transpose(*range(1, len(shape)), 0).ravel()


def fits(x: Tensor, ranks: tuple, channels_first: bool | None, size: int | None, what: str) -> None:
    """``x`` must have one of ``ranks`` (spec rank), torch's layout and ``size`` features; else an InputError."""
    layout_ok = channels_first is None or len(x.shape) == 1 or x.channels_first == channels_first
    if len(x.shape) not in ranks or not layout_ok or (size is not None and x.shape[-1] != size):
        raise InputError(f"{what}, but its input is {x.text()}", field="a chain whose shapes fit")


def settings(kind: str, module) -> None:
    """The settings of ``module`` that no spec layer has, whatever its input."""
    if kind in ("Conv1d", "Conv2d") and (any(d != 1 for d in module.dilation) or module.groups != 1
                                         or module.padding_mode != "zeros"):
        raise InputError(f"dilation={module.dilation}, groups={module.groups}, padding_mode={module.padding_mode!r}",
                         field="dilation=1, groups=1, padding_mode='zeros'")
    if kind in ("BatchNorm1d", "BatchNorm2d") and (not module.affine or not module.track_running_stats
                                                   or module.momentum is None):
        raise InputError("a BatchNorm without affine parameters, running statistics or a momentum",
                         field="affine=True, track_running_stats=True, momentum=a number")
    if kind == "LayerNorm" and (len(module.normalized_shape) != 1 or not module.elementwise_affine
                                or module.bias is None):
        raise InputError(f"normalized_shape={tuple(module.normalized_shape)}, elementwise_affine="
                         f"{module.elementwise_affine}, bias={module.bias is not None}",
                         field="LayerNorm(features) over the last axis, with its weight and bias")
    if kind == "Embedding" and (module.padding_idx is not None or module.max_norm is not None
                                or module.scale_grad_by_freq or module.sparse):
        raise InputError("padding_idx, max_norm, scale_grad_by_freq or sparse (they change what trains)",
                         field="nn.Embedding(num_embeddings, embedding_dim)")
    if kind in RNNS:
        rnn_settings(kind, module)
    if kind == "MultiheadAttention":
        attention_settings(module)


def rnn_settings(kind: str, module) -> None:
    if not module.batch_first:
        raise InputError("batch_first=False: the spec's sequences are (batch, time, features)", field="batch_first=True")
    if getattr(module, "proj_size", 0) or not module.bias:
        raise InputError("proj_size or bias=False", field="a layer with biases and no projection")
    if kind == "RNN" and module.nonlinearity != "tanh":
        raise InputError(f"nonlinearity={module.nonlinearity!r}", field="nonlinearity='tanh'")


def attention_settings(module) -> None:
    if not module.batch_first:
        raise InputError("batch_first=False: the spec's sequences are (batch, time, features)", field="batch_first=True")
    if not module._qkv_same_embed_dim or module.in_proj_bias is None or module.bias_k is not None \
            or module.add_zero_attn or module.dropout:
        raise InputError("kdim/vdim, bias=False, add_bias_kv, add_zero_attn or attention dropout",
                         field="nn.MultiheadAttention(d, heads, batch_first=True) without dropout")


def convert(kind: str, module, x: Tensor) -> Step:
    """The spec layers of one module applied to ``x`` (see the module notes)."""
    if kind == "Linear":
        return linear(module, x)
    if kind in ("Conv1d", "Conv2d"):
        return conv(kind, module, x)
    if kind in POOLS:
        return pool(kind, module, x)
    if kind in ADAPTIVE:
        return adaptive_pool(kind, module.output_size, x)
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return batchnorm(kind, module, x)
    if kind == "LayerNorm":
        return layernorm(module, x)
    if kind == "Embedding":
        return embedding(module, x)
    if kind in RNNS:
        return recurrent(kind, module, x)
    if kind == "MultiheadAttention":
        return attention(module, x)
    if kind == "Flatten":
        if (module.start_dim, module.end_dim) != (1, -1):
            raise InputError(f"flattens dims {module.start_dim}..{module.end_dim}", field="Flatten()")
        return flatten(x)
    if kind == "Dropout":
        return Step([(Dropout(float(module.p)), {})], x.channels_first, keep_order=True)
    if kind in CHANNEL_DROPOUTS:  # of (batch, features), each "channel" is one feature
        fits(x, (1,), None, None, f"{kind} drops whole channels (the spec's Dropout drops single values)")
        return Step([(Dropout(float(module.p)), {})], keep_order=True)
    if kind == "GELU":
        return activation(GELU_FORMS[module.approximate], x)
    if kind in ("LeakyReLU", "ELU"):
        slope = module.negative_slope if kind == "LeakyReLU" else module.alpha
        return activation(ACTIVATIONS[kind], x, alpha=float(slope))
    dim = getattr(module, "dim", None)
    return activation(ACTIVATIONS[kind], x, -1 if dim is None and len(x.shape) == 1 else dim)  # torch's implicit dim


def activation(name: str, x: Tensor, dim=None, alpha: float | None = None) -> Step:
    if name == "softmax" and dim not in feature_dims(x):
        raise InputError(f"softmax over dim {dim}", field="softmax over the features (dim=-1, or 1 on (N, features))")
    return Step([(Activation(name, alpha=alpha), {})], x.channels_first, keep_order=True)


def with_bias(layer, module, weights: dict):
    """``layer`` and ``weights`` with torch's bias, or ``use_bias=False`` where it has none (``bias=False``)."""
    if module.bias is None:
        return [(replace(layer, use_bias=False), weights)]
    return [(layer, {**weights, "bias": host(module.bias)})]


def feature_dims(x: Tensor) -> tuple:
    """The dims (batch first) that index ``x``'s features in torch."""
    rank = len(x.shape) + 1
    return (1, -rank + 1) if x.channels_first and rank > 2 else (rank - 1, -1)


def flatten(x: Tensor) -> Step:
    order = flatten_order(x.shape) if x.channels_first and len(x.shape) > 1 else None
    return Step([(Flatten(), {})], order=order if x.order is None or len(x.shape) > 1 else x.order)


def linear(module, x: Tensor) -> Step:
    fits(x, (1, 2), False, module.in_features, f"in_features={module.in_features}")
    weight = host(module.weight)
    if x.order is not None:
        weight = weight[:, x.order]
    return Step(with_bias(Dense(module.out_features), module, {"kernel": np.ascontiguousarray(weight.T)}))


def conv(kind: str, module, x: Tensor) -> Step:
    ndim = 1 if kind == "Conv1d" else 2
    fits(x, (ndim + 1,), True, module.in_channels, f"in_channels={module.in_channels}")
    padding = module.padding
    if not isinstance(padding, str):
        if len(set(padding)) != 1:
            raise InputError(f"padding={padding} differs between axes", field="the same padding on every axis")
        padding = "valid" if padding[0] == 0 else int(padding[0])
    cls = Conv1D if ndim == 1 else Conv2D
    kernel = host(module.weight).transpose(*range(2, ndim + 2), 1, 0)  # (F, C, k...) -> (k..., C, F)
    layer = cls(module.out_channels, kernel_size=tuple(module.kernel_size), strides=tuple(module.stride),
                padding=padding)
    return Step(with_bias(layer, module, {"kernel": np.ascontiguousarray(kernel)}), True)


def pool_layer(cls, x: Tensor, kernel, stride, padding=0, ceil_mode=False, dilation=1, extra=False) -> Step:
    """A max or average pool of ``x``: the spec's pools take no padding, ceil_mode or dilation."""
    ndim = cls.ndim

    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim

    fits(x, (ndim + 1,), True, None, f"a {ndim}-D pool")
    if any(pair(padding)) or ceil_mode or extra or any(d != 1 for d in pair(dilation)):
        raise InputError("padding, ceil_mode, dilation, return_indices or divisor_override",
                         field="padding=0, ceil_mode=False (dlbench pools do not pad)")
    strides = pair(kernel) if stride is None or stride == [] else pair(stride)
    return Step([(cls(pool_size=pair(kernel), strides=strides), {})], True)


def pool(kind: str, module, x: Tensor) -> Step:
    extra = getattr(module, "return_indices", False) or getattr(module, "divisor_override", None) is not None \
        or not getattr(module, "count_include_pad", True)
    return pool_layer(POOLS[kind], x, module.kernel_size, module.stride, module.padding, module.ceil_mode,
                      getattr(module, "dilation", 1), extra)


def adaptive_pool(kind: str, output_size, x: Tensor) -> Step:
    """An adaptive pool whose output size divides its input: a pool of fixed windows (global pooling at size 1)."""
    cls = ADAPTIVE[kind]
    fits(x, (cls.ndim + 1,), True, None, f"a {cls.ndim}-D pool")
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * cls.ndim
    spatial = x.shape[:-1]
    sizes = tuple(n if s is None else s for s, n in zip(sizes, spatial))
    if any(n % s for s, n in zip(sizes, spatial)):
        raise InputError(f"output size {sizes} does not divide its input {x.text()} (uneven windows)",
                         field="an output size that divides the input, e.g. 1 (global pooling)")
    window = tuple(n // s for s, n in zip(sizes, spatial))
    return Step([(cls(pool_size=window, strides=window), {})], True)


def batchnorm(kind: str, module, x: Tensor) -> Step:
    if kind == "BatchNorm2d":
        fits(x, (3,), True, module.num_features, f"num_features={module.num_features}")
    else:
        fits(x, (1, 2), True, module.num_features, f"num_features={module.num_features}")
    order = x.order if x.order is not None else slice(None)
    weights = {name: host(tensor)[order] for name, tensor in (("gamma", module.weight), ("beta", module.bias),
               ("moving_mean", module.running_mean), ("moving_variance", module.running_var))}
    layer = BatchNormalization(momentum=1.0 - float(module.momentum), epsilon=float(module.eps))
    return Step([(layer, weights)], x.channels_first, keep_order=True)


def layernorm(module, x: Tensor) -> Step:
    d = module.normalized_shape[0]
    fits(x, (1, 2), False, d, f"normalized_shape=({d},)")
    order = x.order if x.order is not None else slice(None)
    weights = {"gamma": host(module.weight)[order], "beta": host(module.bias)[order]}
    return Step([(LayerNormalization(epsilon=float(module.eps)), weights)], keep_order=True)


def embedding(module, x: Tensor) -> Step:
    fits(x, (1,), None, None, "an embedding takes token ids (length,)")
    return Step([(Embedding(module.num_embeddings, module.embedding_dim), {"embeddings": host(module.weight)})])


def recurrent(kind: str, module, x: Tensor) -> Step:
    """One spec layer per torch layer (``return_sequences`` until the reader sees
    that only the last state is used), ``Dropout(dropout)`` between them as
    torch applies it; a bidirectional layer is the spec's ``bidirectional``, its
    ``_reverse`` weights the backward ones."""
    fits(x, (2,), False, module.input_size, f"input_size={module.input_size}")
    cls, u = RNNS[kind], module.hidden_size
    parts = []
    for k in range(module.num_layers):
        if k and module.dropout:
            parts.append((Dropout(float(module.dropout)), {}))
        if not module.bidirectional:
            parts.append((cls(u, return_sequences=True), rnn_weights(cls, module, f"_l{k}")))
            continue
        weights = {f"{direction}.{name}": w for direction, suffix in zip(DIRECTIONS, ("", "_reverse"))
                   for name, w in rnn_weights(cls, module, f"_l{k}{suffix}").items()}
        parts.append((Bidirectional(cls(u, return_sequences=True)), weights))
    return Step(parts)


def rnn_weights(cls, module, suffix: str) -> dict:
    """The canonical weights of one torch layer and direction: biases ``b_ih + b_hh`` (GRU: both, as two rows)."""
    u = module.hidden_size
    w_ih, w_hh, b_ih, b_hh = (host(getattr(module, f"{n}{suffix}")) for n in ("weight_ih", "weight_hh", "bias_ih",
                                                                            "bias_hh"))
    if cls is GRU:  # torch's gates r, z, n -> the spec's z, r, h
        w_ih, w_hh, b_ih, b_hh = (np.concatenate([a[u:2 * u], a[:u], a[2 * u:]]) for a in (w_ih, w_hh, b_ih, b_hh))
        bias = np.stack([b_ih, b_hh])
    else:  # LSTM gates i, f, g, o are the spec's i, f, c, o
        bias = b_ih + b_hh
    return {"kernel": np.ascontiguousarray(w_ih.T), "recurrent_kernel": np.ascontiguousarray(w_hh.T), "bias": bias}


def attention(module, x: Tensor) -> Step:
    d, heads = module.embed_dim, module.num_heads
    fits(x, (2,), False, d, f"embed_dim={d}")
    w, b = host(module.in_proj_weight), host(module.in_proj_bias)
    weights = {}
    for k, part in enumerate(("query", "key", "value")):  # rows [q; k; v], heads side by side (head-major)
        weights[f"{part}_kernel"] = np.ascontiguousarray(w[k * d:(k + 1) * d].T)
        weights[f"{part}_bias"] = b[k * d:(k + 1) * d]
    weights["output_kernel"] = np.ascontiguousarray(host(module.out_proj.weight).T)
    weights["output_bias"] = host(module.out_proj.bias)
    return Step([(SelfAttention(heads, d // heads), weights)])
