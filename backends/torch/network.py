"""The PyTorch backend's network: modules built layer by layer from the spec
and the canonical weights, in NCHW with the channels_last memory format.

The network is an ``nn.Sequential`` of the layers of ``spec.logit_layers()``:
``nn.Linear`` for Dense and ``nn.ReLU/Sigmoid/Tanh/Softmax`` for the
activations. ``nn.Linear`` keeps its weight as (out, in) and computes
``z = x W^T + b``; the canonical kernel is (in, out), so :func:`from_canonical`
(and ``build_network``) copies ``kernel.T`` into ``weight`` and
:func:`to_canonical` returns ``weight.T`` (exact copies both ways).

Convolutional networks (any spatial input) run in torch's NCHW order, a 1-D
signal as an image of height 1 (N, C, 1, L), as the NumPy reference does:

* Conv1D/Conv2D: ``nn.Conv2d``, weight (F, C, kh, kw) = the canonical kernel
  (kh, kw, C, F) permuted (a Conv1D kernel (k, C, F) is (1, k, C, F)), and
  permuted back by ``weights()``. A 3-D tensor has no channels_last format;
  over a height of 1 oneDNN runs its NHWC kernels, and a mnist1d-cnn step
  costs about a third less than with ``F.conv1d`` on (N, C, L). "same" padding is
  TensorFlow's (:func:`dlbench.network.layers.conv_output_length`): when it splits
  evenly on every axis the convolution pads itself, otherwise an
  ``nn.ZeroPad2d`` puts the odd element at the bottom/right first; an integer
  padding is symmetric.
* Memory format: channels_last. The inputs stay on the device in their
  canonical (N, H, W, C) order and the network takes them as a permuted view
  (N, C, H, W), which *is* channels_last, without a copy; convolution weights
  are channels_last too, so oneDNN (cuDNN) runs its NHWC kernels and every
  feature map stays NHWC in memory. On CPU (one thread) that trains the
  shipped CNN scenarios 25-45% faster than contiguous NCHW.
* Max/AveragePool1D/2D: ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (no padding; a
  max's gradient goes to the first maximum, as in the reference).
* A sequence model (an embedding or recurrent layer anywhere) keeps (N, T, F),
  as ``nn.LSTM(batch_first=True)`` takes it; a Conv1D, 1-D pooling or
  BatchNormalization inside it (a text CNN after its embedding, a CNN-LSTM)
  runs on the (N, F, 1, T) signal and comes back (:class:`SequenceLayout`).
* Global pooling: the mean over (H, W) (over time of an (N, T, F) sequence),
  or ``Tensor.max(dim)``, whose gradient goes to the first maximum.
* ``use_bias = false``: ``nn.Linear`` / ``nn.Conv2d`` with ``bias=False``.
* Activations: torch's own modules (``nn.LeakyReLU(alpha)``, ``nn.ELU(alpha)``,
  ``nn.SiLU``, ``nn.GELU(approximate="none" | "tanh")``); see :func:`activation`.
* Flatten: ``x.movedim(1, -1).flatten(1)``: back to channels-last before
  flattening (free on an NHWC tensor), so the next Dense kernel means what it
  means canonically.
* BatchNormalization: ``gamma``, ``beta`` are parameters and
  ``moving_mean``, ``moving_variance`` buffers (the optimizer never sees
  them). Training normalizes with ``F.batch_norm(training=True)`` (fused,
  biased batch variance) and updates the moving statistics itself with
  Keras's momentum (weight of the old values) from the *biased* batch
  variance; ``nn.BatchNorm2d`` would use torch's momentum and the unbiased
  one. ``evaluate()`` switches the model to eval mode: moving statistics.
* Dropout: F.dropout's computation (``x * bernoulli(1 - rate) / (1 - rate)``)
  with the masks drawn from a ``torch.Generator`` of the trainer's own, seeded
  with ``options.seed``: the same seed gives the same masks, and nothing else
  in the process moves them. Not the NumPy reference's masks, so only rate 0
  can agree with it step by step. Identity in eval mode.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dlbench.plugin.helpers import as_2d, padding_pairs_2d
from dlbench.network import (ACTIVATION_ALPHA, GLOBAL_POOLS, Activation, AveragePool1D, AveragePool2D,
                          BatchNormalization, Conv1D, Conv2D, Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, ModelSpec,
                          Residual, TRANSFORMER_LAYERS, activation_alpha)
from dlbench.network.sequence import SEQUENCE_LAYERS, is_sequence_model
from dlbench_backends.torch.sequence import (sequence_modules, sequence_tensors, sequence_to_canonical,
                                             sequence_to_torch)
from dlbench_backends.torch.transformer import PositionwiseLinear, canonical_tensors, transformer_modules

#: convolution weights (and so their inputs and outputs) in channels_last memory format.
CHANNELS_LAST = True


def activation(name: str, dim: int = -1, alpha: float | None = None):
    """The activation as a module and as a function, or (None, identity) for linear.
    ``dim``: softmax's axis (1 on a channels-first feature map, whose channels are axis 1);
    ``alpha``: leaky_relu's negative slope, elu's scale (the spec's default if None).
    torch's own modules throughout: nn.LeakyReLU (slope alpha at 0, as the spec),
    nn.ELU, nn.SiLU, nn.GELU with ``approximate="tanh"`` (gelu, gelu_tanh) or "none" (gelu_erf)."""
    alpha = ACTIVATION_ALPHA.get(name) if alpha is None else alpha
    gelu_tanh = (functools.partial(nn.GELU, approximate="tanh"), functools.partial(F.gelu, approximate="tanh"))
    table = {
        "relu": (nn.ReLU, torch.relu),
        "sigmoid": (nn.Sigmoid, torch.sigmoid),
        "tanh": (nn.Tanh, torch.tanh),
        "softmax": (functools.partial(nn.Softmax, dim=dim), functools.partial(torch.softmax, dim=dim)),
        "gelu": gelu_tanh,
        "gelu_tanh": gelu_tanh,
        "gelu_erf": (functools.partial(nn.GELU, approximate="none"), functools.partial(F.gelu, approximate="none")),
        "leaky_relu": (functools.partial(nn.LeakyReLU, alpha), functools.partial(F.leaky_relu, negative_slope=alpha)),
        "elu": (functools.partial(nn.ELU, alpha), functools.partial(F.elu, alpha=alpha)),
        "silu": (nn.SiLU, F.silu),
    }
    if name == "linear":
        return None, lambda x: x
    module, fn = table[name]
    return module(), fn


class ChannelsLastFlatten(nn.Module):
    """(B, C, H, W) -> (B, H*W*C) in the canonical channels-last, row-major order."""

    def forward(self, x):
        return x.movedim(1, -1).flatten(1)


class GlobalPool(nn.Module):
    """Global average or max pooling to (N, C): over (H, W) of an (N, C, H, W)
    feature map (a 1-D signal's (N, C, 1, L) too), over time of an (N, T, F)
    sequence. The maximum is ``Tensor.max(dim)``, whose gradient goes to the
    index it returns, the first maximum (``amax`` would split it among ties)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if x.dim() == 3:  # (N, T, F)
            return x.mean(dim=1) if self.kind == "average" else x.max(dim=1).values
        if self.kind == "average":
            return x.mean(dim=(2, 3))
        return x.flatten(2).max(dim=2).values


class SeededDropout(nn.Module):
    """Inverted dropout drawing its masks from ``generator``: F.dropout's own
    CPU computation (``bernoulli_(1 - rate)``, divided by ``1 - rate``, times x),
    but not from torch's global generator, so a run is reproducible from its seed."""

    def __init__(self, rate: float, generator):
        super().__init__()
        self.rate, self.generator = rate, generator

    def forward(self, x):
        if not self.training:
            return x
        keep = 1.0 - self.rate  # rate < 1 (the spec checks it)
        mask = torch.empty_like(x).bernoulli_(keep, generator=self.generator)
        return x * mask.div_(keep)


class BatchNorm(nn.Module):
    """Batch normalization over axis 1 (channels of NC..., features of NF) with
    Keras's conventions: ``momentum`` weighs the old moving statistics, and the
    moving variance follows the *biased* batch variance.

    Training normalizes with ``F.batch_norm(training=True)`` (one fused kernel
    forward and backward, biased variance), which also writes the batch mean
    and the *unbiased* variance into two scratch buffers (momentum 1 replaces
    their contents); the moving statistics are then updated from those,
    ``moving_variance = m * moving_variance + (1 - m) * (n - 1) / n * unbiased``.
    With one value per channel (torch refuses to batch-normalize it) the
    batch statistics are x itself and 0, as in the reference. The moving
    statistics are buffers, not parameters: the optimizer never sees them.
    """

    def __init__(self, channels: int, momentum: float, epsilon: float, device):
        super().__init__()
        kw = dict(device=device, dtype=torch.float32)
        self.momentum, self.epsilon = momentum, epsilon
        self.gamma = nn.Parameter(torch.ones(channels, **kw))
        self.beta = nn.Parameter(torch.zeros(channels, **kw))
        self.register_buffer("moving_mean", torch.zeros(channels, **kw))
        self.register_buffer("moving_variance", torch.ones(channels, **kw))
        self.register_buffer("batch_mean", torch.zeros(channels, **kw), persistent=False)
        self.register_buffer("batch_variance", torch.ones(channels, **kw), persistent=False)

    def forward(self, x):
        if not self.training:
            return F.batch_norm(x, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                                False, 0.0, self.epsilon)
        n = x.numel() // x.shape[1]
        m = self.momentum
        if n == 1:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            with torch.no_grad():
                self.moving_mean.mul_(m).add_(x.reshape(-1), alpha=1.0 - m)
                self.moving_variance.mul_(m)
            # mean = x, variance 0: x_hat = (x - x) / sqrt(eps) = 0, whose gradient is 0 too
            return (x - x) * (self.gamma * self.epsilon ** -0.5).view(shape) + self.beta.view(shape)
        y = F.batch_norm(x, self.batch_mean, self.batch_variance, self.gamma, self.beta, True, 1.0,
                         self.epsilon)
        with torch.no_grad():
            self.moving_mean.mul_(m).add_(self.batch_mean, alpha=1.0 - m)
            self.moving_variance.mul_(m).add_(self.batch_variance, alpha=(1.0 - m) * (n - 1) / n)
        return y


def conv_modules(layer, in_shape, device) -> list:
    """[optional zero padding, nn.Conv2d] for a Conv1D/Conv2D spec layer.

    Conv1D is a Conv2d over a height of 1 (as in the NumPy reference; no
    padding along that height). TensorFlow's "same" puts the odd element of
    the total padding at the end; when every axis splits evenly the
    convolution pads itself, otherwise a ZeroPad2d (left, right, top, bottom)
    comes first. An integer padding is symmetric."""
    splits = padding_pairs_2d(layer, in_shape)
    symmetric = all(before == after for before, after in splits)
    conv = nn.utils.skip_init(nn.Conv2d, in_shape[-1], layer.filters, as_2d(layer, layer.kernel_size),
                              stride=as_2d(layer, layer.strides),
                              padding=tuple(b for b, _ in splits) if symmetric else 0, bias=layer.use_bias,
                              device=device, dtype=torch.float32)
    if CHANNELS_LAST:
        conv.to(memory_format=torch.channels_last)  # oneDNN/cuDNN's NHWC kernels; see the module notes
    if symmetric:
        return [conv]
    (top, bottom), (left, right) = splits
    return [nn.ZeroPad2d((left, right, top, bottom)), conv]


class SequenceLayout(nn.Sequential):
    """A 1-D convolution, pooling or BatchNormalization inside a sequence model,
    whose activations are (N, T, F) as its recurrent and embedding layers take
    them: its modules run on the (N, F, 1, T) signal that a channels-first
    network would hold, and their result goes back to (N, T', F')."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2).unsqueeze(2)).squeeze(2).transpose(1, 2)


SIGNAL_LAYERS = (Conv1D, MaxPool1D, AveragePool1D, BatchNormalization)


def holder(parts: list):
    """The module of a layer's parts holding its parameters: the last, or the last inside its layout move."""
    last = parts[-1] if parts else None
    return last[-1] if isinstance(last, SequenceLayout) else last


def layer_modules(layer, in_shape, channels_first: bool, generator, device) -> list:
    """The torch modules computing one spec layer; :func:`holder` finds the one holding its parameters."""
    if not channels_first and len(in_shape) == 2 and isinstance(layer, SIGNAL_LAYERS):
        return [SequenceLayout(*layer_modules(layer, in_shape, True, generator, device))]
    spatial = len(in_shape) > 1 and channels_first
    if type(layer) in TRANSFORMER_LAYERS:
        return transformer_modules(layer, in_shape, device, functools.partial(
            _with_activation, channels_first=channels_first, generator=generator, device=device))
    if isinstance(layer, Dense):  # on (time, features) of a channels-first network: per position
        linear = PositionwiseLinear if spatial else nn.Linear
        return [nn.utils.skip_init(linear, in_shape[-1], layer.units, bias=layer.use_bias, device=device,
                                   dtype=torch.float32)]
    if isinstance(layer, (Conv1D, Conv2D)):
        return conv_modules(layer, in_shape, device)
    if isinstance(layer, (MaxPool1D, MaxPool2D)):
        return [nn.MaxPool2d(as_2d(layer, layer.pool_size), stride=as_2d(layer, layer.strides))]
    if isinstance(layer, (AveragePool1D, AveragePool2D)):
        return [nn.AvgPool2d(as_2d(layer, layer.pool_size), stride=as_2d(layer, layer.strides))]
    if isinstance(layer, GLOBAL_POOLS):
        return [GlobalPool(layer.kind)]
    if isinstance(layer, Flatten):
        return [ChannelsLastFlatten() if spatial else nn.Flatten(1)]
    if isinstance(layer, Dropout):
        return [SeededDropout(layer.rate, generator)] if layer.rate > 0 else []
    if isinstance(layer, BatchNormalization):
        return [BatchNorm(in_shape[-1], layer.momentum, layer.epsilon, device)]
    if isinstance(layer, Activation):
        return []  # its activation follows
    if isinstance(layer, SEQUENCE_LAYERS):
        return sequence_modules(layer, in_shape, device)
    raise NotImplementedError(f"the torch backend cannot build {layer.type!r} layers")


def _with_activation(layer, in_shape, out_shape, channels_first: bool, generator, device) -> tuple[list, object]:
    """(the modules of a residual block's inner layer and its activation, the one holding its parameters)."""
    parts = layer_modules(layer, in_shape, channels_first, generator, device)
    module, _ = activation(getattr(layer, "activation", "linear"),
                           dim=1 if channels_first and len(out_shape) > 1 else -1, alpha=activation_alpha(layer))
    return parts + ([module] if module is not None else []), holder(parts)


def takes_channels_first(spec: ModelSpec) -> bool:
    """Whether the network runs in torch's channels-first order: a spatial input
    (an image, a signal), but not a sequence model, whose (time, features)
    stay (batch, time, features) as nn.LSTM/GRU/RNN(batch_first=True) take them."""
    return len(spec.input_shape) > 1 and not is_sequence_model(spec)


class Network(NamedTuple):
    """The built network: the ``nn.Sequential`` of the logit layers and, by
    spec layer index, the module holding that layer's parameters."""

    model: nn.Sequential
    holders: dict


def build_network(spec: ModelSpec, weights, device="cpu", generator=None) -> Network:
    """The network of ``spec`` holding exactly ``weights`` on ``device``
    (``generator`` draws its dropout masks).

    Feature maps are (N, C, H, W) whenever the input is spatial (a 1-D signal:
    (N, C, 1, L)); the trainer views its channels-last inputs that way."""
    channels_first = takes_channels_first(spec)
    modules, holders = [], {}
    with torch.no_grad():
        for i, (layer, (in_shape, out_shape)) in enumerate(zip(spec.logit_layers(), spec.shapes)):
            parts = layer_modules(layer, in_shape, channels_first, generator, device)
            modules.extend(parts)
            if weights[i]:
                holders[i] = holder(parts)
                load_weights(holders[i], layer, weights[i])
            name = getattr(layer, "activation", "linear")
            module, _ = activation(name, dim=1 if channels_first and len(out_shape) > 1 else -1,
                                   alpha=activation_alpha(layer))
            if module is not None:
                modules.append(module)
    return Network(nn.Sequential(*modules), holders)


def to_canonical(spec: ModelSpec, network: Network) -> list[dict]:
    """The network's weights in the canonical layouts (host copies), one dict
    per spec layer: a final Activation layer, left out of the logit layers,
    has its empty one too."""
    layers = spec.logit_layers()
    return [module_weights(network.holders[i], layers[i]) if i in network.holders else {}
            for i in range(len(spec.layers))]


def from_canonical(spec: ModelSpec, network: Network, weights) -> Network:
    """``network`` holding ``weights`` (canonical layouts), copied in place."""
    layers = spec.logit_layers()
    with torch.no_grad():
        for i, module in network.holders.items():
            load_weights(module, layers[i], weights[i])
    return network


def module_tensors(module, layer) -> dict:
    """One layer's parameters and moving statistics by canonical name, as torch holds them."""
    if type(layer) in TRANSFORMER_LAYERS:
        return canonical_tensors(module, layer, module_tensors)
    if isinstance(layer, (Dense, Conv1D, Conv2D)):
        return {"kernel": module.weight, **({"bias": module.bias} if layer.use_bias else {})}
    if isinstance(layer, SEQUENCE_LAYERS):
        return sequence_tensors(module, layer)
    return {name: getattr(module, name) for name in ("gamma", "beta", "moving_mean", "moving_variance")}


def tensor_from_canonical(layer, name: str, value, like):
    """A canonical array as a host tensor in the layout of ``like`` (the torch tensor it goes into)."""
    if isinstance(layer, Residual):  # "<j>.<name>", "shortcut.<k>.<name>": that inner layer's own conversion
        return tensor_from_canonical(*layer.part(name), value, like)
    t = torch.from_numpy(np.ascontiguousarray(value, np.float32))
    if isinstance(layer, SEQUENCE_LAYERS):
        return sequence_to_torch(layer, name, t)
    if name != "kernel":
        return t
    if isinstance(layer, Dense):  # (in, out) -> (out, in)
        return t.t()
    # (kh, kw, C, F) -> (F, C, kh, kw); (k, C, F) as (1, k, C, F)
    return t.reshape(like.shape[2:] + t.shape[-2:]).permute(3, 2, 0, 1)


def tensor_to_canonical(layer, name: str, tensor) -> np.ndarray:
    """A torch tensor (a parameter, or optimizer state shaped like it) in the canonical layout (host copy)."""
    if isinstance(layer, Residual):
        return tensor_to_canonical(*layer.part(name), tensor)
    if isinstance(layer, SEQUENCE_LAYERS):
        return _host(sequence_to_canonical(layer, name, tensor))
    if name != "kernel":
        return _host(tensor)
    if isinstance(layer, Dense):
        return _host(tensor.t())
    kernel = tensor.permute(2, 3, 1, 0)  # (F, C, kh, kw) -> (kh, kw, C, F)
    return _host(kernel.reshape(kernel.shape[1:]) if layer.ndim == 1 else kernel)


def load_weights(module, layer, weights: dict) -> None:
    """Copy one layer's canonical weights into its module (torch's layouts)."""
    tensors = module_tensors(module, layer)
    for name, value in weights.items():
        tensors[name].copy_(tensor_from_canonical(layer, name, value, tensors[name]))


def module_weights(module, layer) -> dict:
    """One layer's weights in the canonical layouts (host copies)."""
    return {name: tensor_to_canonical(layer, name, tensor) for name, tensor in module_tensors(module, layer).items()}


def _host(tensor) -> np.ndarray:
    """A C-contiguous float32 host copy that training can never change."""
    return tensor.detach().cpu().contiguous().numpy().copy()
