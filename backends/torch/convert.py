"""torch ``nn.Sequential`` -> dlbench specs (``dlbench.from_torch``, ``dlbench.benchmark(module)``).

A chain of supported modules (nested ``nn.Sequential`` are read as their
modules); anything else, or a setting the spec cannot express (dilation,
groups, padding that differs between axes, ``ceil_mode``, a BatchNorm
without running statistics), is refused with the module's index, name and
what is supported. torch's conventions, converted:

* layout: torch takes images NCHW and signals NCL; the spec is channels-last.
  ``input_shape`` is given as torch takes it, ``(C, H, W)``; the spec's is
  ``(H, W, C)`` (``benchmark`` moves the data's channels last). Kernels
  ``(F, C, kh, kw)`` become ``(kh, kw, C, F)`` (Conv1d: ``(F, C, k)`` ->
  ``(k, C, F)``), a Linear's ``(out, in)`` weight its ``(in, out)`` kernel.
  A Flatten of a feature map orders features (C, H, W) in torch and
  (H, W, C) in the spec, so the Linear (and a BatchNorm1d) after it gets
  its inputs reordered: it computes the same function.
* BatchNorm momentum: torch's is the weight of the *new* batch (0.1), the
  spec's that of the old statistics, so it becomes ``1 - momentum`` (0.9).
  torch updates its running variance from the unbiased batch variance, the
  spec (as Keras) from the biased one: the converted model follows the spec.
* loss: ``nn.CrossEntropyLoss`` / ``nn.BCEWithLogitsLoss`` take logits, so the
  spec gets the softmax / sigmoid output they imply; ``nn.BCELoss`` needs a
  final Sigmoid; ``nn.MSELoss`` is mse; a dlbench loss name is taken as it
  is. None: a final Softmax or Sigmoid says which.
* optimizer: a ``torch.optim.Adam`` or ``SGD`` (one set of hyper-parameters;
  no weight decay, AMSGrad, Nesterov, dampening or maximize) or a dlbench
  optimizer; None: ``dlbench.Adam()``. torch's Adam adds epsilon as the spec does.
"""

from __future__ import annotations

import sys

import numpy as np

from dlbench.errors import InputError, one_of
from dlbench.spec import (SGD, Activation, Adam, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, ModelSpec, format_shape, make_optimizer)
from dlbench.spec.imported import LOGIT_OUTPUTS, ImportedModel, unsupported

ACTIVATIONS = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax"}
POOLS = {"MaxPool1d": MaxPool1D, "MaxPool2d": MaxPool2D, "AvgPool1d": AveragePool1D, "AvgPool2d": AveragePool2D}
SUPPORTED = ("Linear", "Conv1d", "Conv2d", *POOLS, "Flatten", "Dropout", "BatchNorm1d", "BatchNorm2d", *ACTIVATIONS,
             "Identity")
LOSS_MODULES = ("CrossEntropyLoss", "BCEWithLogitsLoss", "BCELoss", "MSELoss")


def reads(model) -> bool:
    """Whether ``model`` is a torch module (torch is never imported to tell)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def import_model(module, *, input_shape=None, loss=None, optimizer=None) -> ImportedModel:
    """The spec and canonical weights of ``module``; see the module notes."""
    nn = sys.modules["torch"].nn
    try:
        modules = chain(nn, module)
        reader = Reader(channels_last(torch_input_shape(input_shape)))
        for index, (name, child) in enumerate(modules):
            reader.read(index, name, child)
        loss_name, output = torch_loss(nn, loss, type(modules[-1][1]).__name__)
        layers, weights = reader.layers, reader.weights
        if output:
            layers, weights = [*layers, Activation(output)], [*weights, {}]
        spec = ModelSpec(channels_last(tuple(input_shape)), tuple(layers), loss_name, torch_optimizer(optimizer))
    except InputError as exc:
        raise exc.within(source=f"torch {type(module).__name__}") from None
    return ImportedModel(spec, weights, "torch-sequential", f"torch nn.Sequential ({len(modules)} modules)")


def chain(nn, module, prefix: str = "") -> list[tuple[str, object]]:
    """(name, module) of every module in order; nested Sequentials opened."""
    if not isinstance(module, nn.Sequential):
        raise InputError(f"expected an nn.Sequential (a chain of modules), got a {type(module).__name__}; a module "
                         "with its own forward() cannot be read", field="model")
    found = []
    for name, child in module._modules.items():  # named_children() would list a module used twice once
        found += chain(nn, child, f"{prefix}{name}.") if isinstance(child, nn.Sequential) else [(prefix + name, child)]
    if not found:
        raise InputError("the nn.Sequential is empty", field="model")
    return found


def torch_input_shape(shape) -> tuple:
    if shape is None:
        raise InputError("give the shape of one sample as the module takes it, e.g. (1, 28, 28) for NCHW images",
                         field="input_shape")
    shape = tuple(shape)
    if not shape or len(shape) > 3 or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape):
        raise InputError(f"must be 1 to 3 positive integers: (features,), (C, L) or (C, H, W); got {shape!r}",
                         field="input_shape")
    return shape


def channels_last(shape: tuple) -> tuple:
    """torch's (C, *spatial) as the spec's (*spatial, C)."""
    return (*shape[1:], shape[0]) if len(shape) > 1 else tuple(shape)


def host(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32, copy=True)


def flatten_order(shape: tuple) -> np.ndarray:
    """For each feature of the spec's Flatten of ``shape`` (H, W, C), its index in torch's flatten (C, H, W)."""
    torch_shape = (shape[-1], *shape[:-1])
    return np.arange(int(np.prod(shape))).reshape(torch_shape).transpose(*range(1, len(shape)), 0).ravel()


class Reader:
    """Reads the modules one by one, following the spec's (channels-last) shape through the chain."""

    def __init__(self, shape: tuple):
        self.shape = shape
        self.order: np.ndarray | None = None  # torch's index of each feature after a Flatten of a feature map
        self.layers: list = []
        self.weights: list = []

    def read(self, index: int, name: str, module) -> None:
        kind = type(module).__name__
        label = kind if name == str(index) else f"{name!r}, {kind}"
        if kind not in SUPPORTED:
            raise unsupported(index, label, f"{kind} modules cannot be read", SUPPORTED)
        if kind == "Identity":
            return
        try:
            layer, weights = self.convert(kind, module)
        except InputError as exc:
            raise unsupported(index, label, exc.message, exc.field and [exc.field] or SUPPORTED) from None
        try:
            shape = layer.output_shape(self.shape)
        except InputError as exc:
            raise unsupported(index, label, f"{exc.message} (its input is {torch_text(self.shape)} in torch's "
                              "layout)", ["a chain whose shapes fit"]) from None
        self.layers.append(layer)
        self.weights.append(weights)
        if kind == "Flatten":
            self.order = flatten_order(self.shape) if len(self.shape) > 1 else None
        elif kind not in ("Dropout", "BatchNorm1d", *ACTIVATIONS):
            self.order = None  # a Linear's outputs are in their own order
        self.shape = shape

    def convert(self, kind: str, module):
        """(spec layer, canonical weights) of one module; an InputError(message, field=what would do)."""
        if kind == "Linear":
            return self.linear(module)
        if kind in ("Conv1d", "Conv2d"):
            return conv(kind, module, self.shape)
        if kind in POOLS:
            return pool(kind, module)
        if kind in ("BatchNorm1d", "BatchNorm2d"):
            return self.batchnorm(kind, module)
        if kind == "Flatten":
            if (module.start_dim, module.end_dim) != (1, -1):
                raise InputError(f"flattens dims {module.start_dim}..{module.end_dim}", field="Flatten()")
            return Flatten(), {}
        if kind == "Dropout":
            return Dropout(float(module.p)), {}
        if kind == "Softmax" and module.dim not in ((1, -1) if len(self.shape) == 1 else (1,)):
            raise InputError(f"softmax over dim {module.dim}", field="Softmax(dim=1)")
        return Activation(ACTIVATIONS[kind]), {}

    def linear(self, module):
        if module.bias is None:
            raise InputError("bias=False (every dlbench Dense has a bias)", field="bias=True")
        if len(self.shape) != 1 or self.shape[0] != module.in_features:
            raise InputError(f"in_features={module.in_features}, but its input is {torch_text(self.shape)}",
                             field="a chain whose shapes fit")
        weight = host(module.weight)
        if self.order is not None:
            weight = weight[:, self.order]
        return Dense(module.out_features), {"kernel": np.ascontiguousarray(weight.T), "bias": host(module.bias)}

    def batchnorm(self, kind: str, module):
        ranks = (3,) if kind == "BatchNorm2d" else (1, 2)
        if len(self.shape) not in ranks or self.shape[-1] != module.num_features:
            raise InputError(f"num_features={module.num_features}, but its input is {torch_text(self.shape)}",
                             field="a chain whose shapes fit")
        if not module.affine or not module.track_running_stats or module.momentum is None:
            raise InputError("a BatchNorm without affine parameters, running statistics or a momentum",
                             field="affine=True, track_running_stats=True, momentum=a number")
        order = self.order if self.order is not None else slice(None)
        weights = {name: host(tensor)[order] for name, tensor in (("gamma", module.weight), ("beta", module.bias),
                   ("moving_mean", module.running_mean), ("moving_variance", module.running_var))}
        return BatchNormalization(momentum=1.0 - float(module.momentum), epsilon=float(module.eps)), weights


def torch_text(shape: tuple) -> str:
    """A spec (channels-last) shape as torch sees it, for messages."""
    return format_shape((shape[-1], *shape[:-1]) if len(shape) > 1 else shape)


def conv(kind: str, module, shape: tuple):
    ndim = 1 if kind == "Conv1d" else 2
    if len(shape) != ndim + 1 or shape[-1] != module.in_channels:
        raise InputError(f"in_channels={module.in_channels}, but its input is {torch_text(shape)}",
                         field="a chain whose shapes fit")
    if any(d != 1 for d in module.dilation) or module.groups != 1 or module.padding_mode != "zeros":
        raise InputError(f"dilation={module.dilation}, groups={module.groups}, padding_mode={module.padding_mode!r}",
                         field="dilation=1, groups=1, padding_mode='zeros'")
    if module.bias is None:
        raise InputError("bias=False (every dlbench convolution has a bias)", field="bias=True")
    padding = module.padding
    if not isinstance(padding, str):
        if len(set(padding)) != 1:
            raise InputError(f"padding={padding} differs between axes", field="the same padding on every axis")
        padding = "valid" if padding[0] == 0 else int(padding[0])
    cls = Conv1D if ndim == 1 else Conv2D
    kernel = host(module.weight).transpose(*range(2, ndim + 2), 1, 0)  # (F, C, k...) -> (k..., C, F)
    layer = cls(module.out_channels, kernel_size=tuple(module.kernel_size), strides=tuple(module.stride),
                padding=padding)
    return layer, {"kernel": np.ascontiguousarray(kernel), "bias": host(module.bias)}


def pool(kind: str, module):
    ndim = 1 if kind.endswith("1d") else 2

    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim

    if any(pair(module.padding)) or module.ceil_mode or getattr(module, "return_indices", False) \
            or any(d != 1 for d in pair(getattr(module, "dilation", 1))) \
            or getattr(module, "divisor_override", None) is not None:
        raise InputError("padding, ceil_mode, dilation, return_indices or divisor_override",
                         field="padding=0, ceil_mode=False (dlbench pools do not pad)")
    return POOLS[kind](pool_size=pair(module.kernel_size), strides=pair(module.stride)), {}


def torch_loss(nn, loss, last: str) -> tuple[str, str | None]:
    """(the spec's loss, the output activation a logits loss implies or None)."""
    if loss is None:
        found = {"Softmax": "categorical_crossentropy", "Sigmoid": "binary_crossentropy"}.get(last)
        if found is None:
            raise InputError(f"give loss=: a dlbench loss ({one_of(('binary_crossentropy', 'categorical_crossentropy', 'mse'))}) "
                             f"or a torch loss module ({', '.join(LOSS_MODULES)}); the module ends in {last}, "
                             "which names none", field="loss")
        return found, None
    if isinstance(loss, str):
        return loss, None  # ModelSpec checks the name
    kind = type(loss).__name__
    if kind not in LOSS_MODULES or not isinstance(loss, nn.Module):
        raise InputError(f"loss {kind} cannot be read; expected a dlbench loss name or one of "
                         f"{', '.join(LOSS_MODULES)}", field="loss")
    if getattr(loss, "reduction", "mean") != "mean" or getattr(loss, "weight", None) is not None \
            or getattr(loss, "pos_weight", None) is not None or getattr(loss, "label_smoothing", 0.0):
        raise InputError(f"{kind} with weights, label smoothing or a reduction other than 'mean'",
                         field="loss")
    spec_loss = {"CrossEntropyLoss": "categorical_crossentropy", "BCEWithLogitsLoss": "binary_crossentropy",
                 "BCELoss": "binary_crossentropy", "MSELoss": "mse"}[kind]
    if kind in ("CrossEntropyLoss", "BCEWithLogitsLoss"):
        if last in ACTIVATIONS and ACTIVATIONS[last] == LOGIT_OUTPUTS[spec_loss]:
            raise InputError(f"{kind} takes logits, but the module ends in {last}: drop the {last}, or pass "
                             f"loss={spec_loss!r}", field="loss")
        return spec_loss, LOGIT_OUTPUTS[spec_loss]
    return spec_loss, None


def torch_optimizer(optimizer):
    """The spec's Adam or SGD of a torch optimizer (or a dlbench optimizer, name or table)."""
    torch = sys.modules["torch"]
    if optimizer is None:
        return Adam()
    if not isinstance(optimizer, torch.optim.Optimizer):
        return make_optimizer(optimizer)
    kind = type(optimizer).__name__
    if kind not in ("Adam", "SGD"):
        raise InputError(f"optimizer {kind} cannot be read; expected torch.optim.Adam or SGD, or a dlbench "
                         "optimizer", field="optimizer")
    keys = ("lr", "betas", "eps") if kind == "Adam" else ("lr", "momentum")
    groups = [{k: _number(g[k]) for k in keys} for g in optimizer.param_groups]
    if any(g != groups[0] for g in groups):
        raise InputError("parameter groups with different hyper-parameters; a spec has one set", field="optimizer")
    g = optimizer.param_groups[0]
    for key in ("weight_decay", "amsgrad", "nesterov", "dampening", "maximize"):
        if g.get(key):
            raise InputError(f"{kind} with {key}={g[key]!r} has no counterpart in a dlbench optimizer",
                             field="optimizer")
    h = groups[0]
    if kind == "SGD":
        return SGD(learning_rate=h["lr"], momentum=h["momentum"])
    return Adam(learning_rate=h["lr"], beta_1=h["betas"][0], beta_2=h["betas"][1], epsilon=h["eps"])


def _number(value):
    if isinstance(value, (tuple, list)):
        return tuple(_number(v) for v in value)
    return float(value)
