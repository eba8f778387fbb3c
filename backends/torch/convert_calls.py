"""torch functions and tensor methods of a traced graph -> spec layers, for the
graph reader (:mod:`dlbench_backends.torch.convert_graph`): what each call
site means (``F.relu``, ``F.max_pool2d(x, 2)``, ``x.view(x.size(0), -1)``,
``x.mean(1)``, ...), sizes (:class:`BatchSize`) and attention masks made in
``forward``, and :class:`Problem`, one part that cannot be read.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from dlbench.network import Flatten, GlobalAveragePool1D, GlobalMaxPool1D, GlobalMaxPool2D
from dlbench_backends.torch import convert_layers as cl
from dlbench_backends.torch.convert_layers import Step

FUNCTIONS = ("relu", "gelu", "silu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout",
             "max_pool1d/2d", "avg_pool1d/2d", "adaptive_avg/max_pool1d/2d", "flatten(x, 1)",
             "view/reshape(x.size(0), -1)", "mean over time or space", "amax or max(x, dim) over time or space",
             "x + f(x)", "out[:, -1]", "h_n[-1]",
             "contiguous", "permute/transpose of (N, L, C)")
SUPPORTED = (*cl.MODULES, *FUNCTIONS)
class BatchSize(int):
    """``x.size(0)``: the batch size, told apart from a literal in ``view(x.size(0), -1)``."""


class Problem(Exception):
    """One part that cannot be read: its message, and what would do."""

    def __init__(self, message: str, supported=SUPPORTED):
        super().__init__(message)
        self.message, self.supported = message, tuple(supported)


def torch_function_names() -> dict:
    """fx call_function targets -> the operation they are."""
    F = torch.nn.functional
    names = {operator.add: "add", operator.iadd: "add", torch.add: "add", operator.getitem: "getitem",
             getattr: "getattr", torch.flatten: "flatten", torch.reshape: "reshape", torch.mean: "mean",
             F.dropout: "dropout", F.gelu: "gelu", F.silu: "silu", F.leaky_relu: "leaky_relu", F.elu: "elu",
             torch.amax: "amax", torch.max: "max"}
    for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax"):
        names.update({getattr(F, name): name, getattr(torch, name): name})
    for name in ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
                 "adaptive_max_pool1d", "adaptive_max_pool2d"):
        names[getattr(F, name)] = name
    return names


def causal_mask(mask, length: int, is_causal: bool) -> bool:
    """Whether ``mask`` (an attn_mask computed while reading, or None) is the causal one."""
    if mask is None:
        if is_causal:
            raise Problem("is_causal=True without its attn_mask", ["attn_mask=the causal mask, or none"])
        return False
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (length, length):
        raise Problem(f"an attn_mask of shape {tuple(getattr(mask, 'shape', ()))}", ["a causal (T, T) mask"])
    above = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    blocked = mask if mask.dtype == torch.bool else torch.isneginf(mask)
    if not torch.equal(blocked, above) or (mask.dtype != torch.bool and bool(mask[~above].any())):
        raise Problem("an attn_mask other than the causal one", ["the causal mask, or none"])
    return True


# ----------------------------------------------------- functional steps
def _dim(args, kwargs, default=None):
    return kwargs.get("dim", args[0] if args else default)


def _activation(name):
    return lambda x, args, kwargs: cl.activation(name, x, _dim(args, kwargs, -1 if len(x.shape) == 1 else None))


def _gelu(x, args, kwargs):
    return cl.activation(cl.GELU_FORMS[kwargs.get("approximate", args[0] if args else "none")], x)


def _sloped(name: str, key: str, default: float):
    """``F.leaky_relu(x, negative_slope=0.01)`` / ``F.elu(x, alpha=1.0)``: the slope torch uses, written out."""
    return lambda x, args, kwargs: cl.activation(name, x, alpha=float(kwargs.get(key, args[0] if args else default)))


def _dropout(x, args, kwargs):
    p = kwargs.get("p", args[0] if args else 0.5)
    training = kwargs.get("training", args[1] if len(args) > 1 else True)
    return Step([(cl.Dropout(float(p)), {})] if training else [], x.channels_first, keep_order=True)


def _pool(cls):
    def step(x, args, kwargs):
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
        given = {**dict(zip(names, args)), **kwargs}
        extra = given.get("return_indices") or given.get("count_include_pad") is False \
            or given.get("divisor_override") is not None
        return cl.pool_layer(cls, x, given["kernel_size"], given.get("stride"), given.get("padding", 0),
                             given.get("ceil_mode", False), given.get("dilation", 1), extra)
    return step


def _adaptive(kind):
    return lambda x, args, kwargs: cl.adaptive_pool(kind, kwargs.get("output_size", args[0] if args else None), x)


def _flatten(x, args, kwargs):
    start = kwargs.get("start_dim", args[0] if args else 0)
    end = kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
    if (start, end) != (1, -1):
        raise Problem(f"flatten({start}, {end}) (the batch axis is dim 0)", ["flatten(x, 1)", "x.flatten(1)"])
    return cl.flatten(x)


def _reshape(x, args, kwargs):
    """``view``/``reshape`` to (batch, features): a Flatten; any other shape is refused."""
    shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)
    size = int(np.prod(x.shape))
    batch_first = bool(shape) and (isinstance(shape[0], BatchSize) or shape[0] == -1)
    if batch_first and len(shape) == 2 and shape[1] in (-1, size):
        return cl.flatten(x)
    dims, rest = x.torch_dims(), shape[1:]
    if batch_first and len(rest) == len(dims) and all(r in (d, -1) for r, d in zip(rest, dims)) \
            and rest.count(-1) <= 1:
        return Step([], x.channels_first, keep_order=True)  # the shape it has: nothing changes
    raise Problem(f"reshape to {shape} of {x.text()}", ["x.view(x.size(0), -1)", "x.reshape(-1, features)",
                                                         "a reshape of the input: input_shape= the shape it makes"])


def _mean(x, args, kwargs):
    """The mean over time of (N, L, C), or over every spatial axis of a feature map: global average pooling."""
    dim = kwargs.get("dim", args[0] if args else None)
    keep = kwargs.get("keepdim", args[1] if len(args) > 1 else False)
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    rank = len(x.shape) + 1
    dims = tuple(sorted(d % rank for d in dims if d is not None))
    if not keep and len(x.shape) == 2 and not x.channels_first and dims == (1,):
        return Step([(GlobalAveragePool1D(), {})])
    if not keep and x.channels_first and dims == tuple(range(2, rank)):
        window = x.shape[:-1]
        cls = cl.AveragePool1D if len(window) == 1 else cl.AveragePool2D
        return Step([(cls(pool_size=window, strides=window), {}), (Flatten(), {})])
    raise Problem(f"mean over dims {dim} of {x.text()}", ["x.mean(dim=1) of (N, L, C)", "x.mean((2, 3)) of a map"])


def _amax(x, args, kwargs):
    """The maximum over time of (N, L, C) or (N, C, L), or over every spatial axis of a map: global max pooling."""
    dim = kwargs.get("dim", args[0] if args else None)
    keep = kwargs.get("keepdim", args[1] if len(args) > 1 else False)
    rank = len(x.shape) + 1
    dims = tuple(sorted(d % rank for d in (tuple(dim) if isinstance(dim, (tuple, list)) else (dim,))))
    positions = tuple(range(2, rank)) if x.channels_first else tuple(range(1, rank - 1))
    if not keep and rank in (3, 4) and dims == positions:
        return Step([(GlobalMaxPool1D() if rank == 3 else GlobalMaxPool2D(), {})])
    raise Problem(f"amax over dims {dim} of {x.text()}", ["x.amax(1) of (N, L, C)", "x.amax((2, 3)) of a map"])


def _squeeze(x, args, kwargs):
    """``x.squeeze(2)`` of a (N, C, 1) map after pooling over all of it (a text CNN's max over time): a Flatten."""
    dim = kwargs.get("dim", args[0] if args else None)
    rank = len(x.shape) + 1
    if x.channels_first and all(n == 1 for n in x.shape[:-1]) and (dim is None or dim % rank >= 2):
        return Step([(Flatten(), {})])
    raise Problem(f"squeeze({dim}) of {x.text()}", ["squeeze of a (N, C, 1) map"])


FUNCTION_STEPS = {"relu": _activation("relu"), "sigmoid": _activation("sigmoid"), "tanh": _activation("tanh"),
                  "softmax": _activation("softmax"), "log_softmax": _activation("softmax"), "gelu": _gelu,
                  "silu": _activation("silu"), "leaky_relu": _sloped("leaky_relu", "negative_slope", 0.01),
                  "elu": _sloped("elu", "alpha", 1.0), "amax": _amax,
                  "dropout": _dropout, "max_pool1d": _pool(cl.MaxPool1D), "max_pool2d": _pool(cl.MaxPool2D),
                  "avg_pool1d": _pool(cl.AveragePool1D), "avg_pool2d": _pool(cl.AveragePool2D),
                  "adaptive_avg_pool1d": _adaptive("AdaptiveAvgPool1d"),
                  "adaptive_avg_pool2d": _adaptive("AdaptiveAvgPool2d"),
                  "adaptive_max_pool1d": _adaptive("AdaptiveMaxPool1d"),
                  "adaptive_max_pool2d": _adaptive("AdaptiveMaxPool2d"),
                  "flatten": _flatten, "view": _reshape, "reshape": _reshape, "mean": _mean, "squeeze": _squeeze}
