"""Layer specs of Transformers: layer normalization, multi-head self-attention,
residual blocks, learned position embeddings and global average pooling over time.

Sequences are ``(time, features)`` (the batch axis excluded), as everywhere
in the spec channels-last. The conventions, pinned once for every backend:

* ``layer_norm``: ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``
  over the last axis, ``var`` the biased variance (divided by the feature
  count), as every framework does. ``epsilon`` defaults to **1e-5**
  (PyTorch's ``nn.LayerNorm`` and GPT-2's; Keras uses 1e-3, flax 1e-6).
  Parameters ``gamma`` (ones) and ``beta`` (zeros), shape ``(features,)``.
* ``self_attention`` (``num_heads`` H, ``key_dim`` K, ``causal``) on an
  input X ``(T, d)``: ``Q = X Wq + bq``, ``K = X Wk + bk``, ``V = X Wv + bv``,
  each ``(T, H*K)``, whose columns ``h*K .. h*K + K - 1`` are head ``h``
  (head-major); per head ``A_h = softmax(Q_h K_h^T / sqrt(K) + M) V_h`` and
  ``Y = concat_h(A_h) Wo + bo``, ``(T, d)``. ``M`` is 0 everywhere, or, when
  ``causal``, ``-inf`` above the diagonal (position ``i`` sees ``j <= i``:
  the lower triangle). The scale is ``1 / sqrt(key_dim)``; no dropout.
  Canonical layout (flat, like ``nn.MultiheadAttention``'s in-projection
  blocks transposed): ``query_kernel``, ``key_kernel``, ``value_kernel``
  ``(d, H*K)`` with biases ``(H*K,)``, ``output_kernel`` ``(H*K, d)`` with
  ``output_bias`` ``(d,)``. Keras's MultiHeadAttention holds the same numbers
  as ``(d, H, K)`` and ``(H, K, d)``: a reshape. Kernels are glorot-uniform
  over their 2-D shapes, biases zero.
* ``residual`` (``layers``, ``shortcut``): ``y = s(x) + f(x)``, ``f`` the chain
  of ``layers`` and ``s`` the chain of ``shortcut`` layers, the identity when
  there are none (the default), so that ``f``'s output shape must be the
  input's; with a shortcut it must be the shortcut's. A shortcut of a 1x1
  convolution with the block's stride and no bias, then a BatchNormalization,
  is ResNet's projection shortcut (He et al. 2016, "Deep Residual Learning",
  option B; torchvision's ``BasicBlock.downsample``, Keras's ResNet
  ``block1(conv_shortcut=True)``). Its parameters are those of its
  layers, flattened into one dict with the names ``"<j>.<name>"`` (``j`` the
  index of the inner layer; nested residuals give ``"<j>.<k>.<name>"``), in
  the inner layers' order, then those of the shortcut's layers as
  ``"shortcut.<k>.<name>"``. That is how initial weights, weight files,
  training states and the parity certificate see them, so every nested
  parameter is certified like a top-level one.
* ``position_embedding`` (``max_length``): ``y = x + P[:T]``, ``P``
  ``(max_length, d)`` learned (``position_embeddings``, glorot-uniform as
  keras_hub's PositionEmbedding initialises it); ``T <= max_length``.
* ``global_average_pool1d``: ``(T, F) -> (F,)``, the mean over time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from dlbench.errors import InputError
from dlbench.network.checks import Shape, check_number, check_positive_int, format_shape
from dlbench.network.layers import LAYER_TYPES
from dlbench.network.sequence import Bidirectional


def _sequence(layer_type: str, input_shape: Shape) -> None:
    if len(input_shape) != 2:
        raise InputError(f"{layer_type} needs a 2-D input (time, features), got shape {format_shape(input_shape)}")


@dataclass(frozen=True)
class LayerNormalization:
    """Normalization of each position over its features (the last axis)."""

    epsilon: float = 1e-5
    input_shape: Shape | None = None
    type: ClassVar[str] = "layer_norm"

    def __post_init__(self):
        check_number(self.epsilon, "epsilon", low=0.0)

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"gamma": (input_shape[-1],), "beta": (input_shape[-1],)}


@dataclass(frozen=True)
class SelfAttention:
    """Multi-head scaled dot-product self-attention with output projection."""

    num_heads: int
    key_dim: int
    causal: bool = False
    input_shape: Shape | None = None
    type: ClassVar[str] = "self_attention"

    def __post_init__(self):
        check_positive_int(self.num_heads, "num_heads")
        check_positive_int(self.key_dim, "key_dim")
        if not isinstance(self.causal, bool):
            raise InputError(f"must be true or false, got {self.causal!r}", field="causal")

    def output_shape(self, input_shape: Shape) -> Shape:
        _sequence(self.type, input_shape)
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        d, inner = input_shape[-1], self.num_heads * self.key_dim
        shapes: dict[str, Shape] = {}
        for part in ("query", "key", "value"):
            shapes[f"{part}_kernel"] = (d, inner)
            shapes[f"{part}_bias"] = (inner,)
        shapes["output_kernel"] = (inner, d)
        shapes["output_bias"] = (d,)
        return shapes


@dataclass(frozen=True)
class PositionEmbedding:
    """A learned embedding per position, added to the input."""

    max_length: int
    input_shape: Shape | None = None
    type: ClassVar[str] = "position_embedding"

    def __post_init__(self):
        check_positive_int(self.max_length, "max_length")

    def output_shape(self, input_shape: Shape) -> Shape:
        _sequence(self.type, input_shape)
        if input_shape[0] > self.max_length:
            raise InputError(f"the sequence has {input_shape[0]} positions, more than max_length "
                             f"{self.max_length}", field="max_length")
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"position_embeddings": (self.max_length, input_shape[-1])}


@dataclass(frozen=True)
class GlobalAveragePool1D:
    """The mean over time: (T, F) -> (F,)."""

    input_shape: Shape | None = None
    type: ClassVar[str] = "global_average_pool1d"

    def output_shape(self, input_shape: Shape) -> Shape:
        _sequence(self.type, input_shape)
        return (input_shape[-1],)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {}


def _chain(layers, name: str, allow_empty: bool) -> tuple:
    if not isinstance(layers, (list, tuple)) or not (layers or allow_empty):
        raise InputError(f"must be a {'' if allow_empty else 'non-empty '}list of layers, got {layers!r}", field=name)
    for j, layer in enumerate(layers):
        if type(layer) not in LAYER_TYPES.values():
            raise InputError(f"must be a layer spec, got {layer!r}", field=f"{name}[{j}]")
    return tuple(layers)


def chain_shapes(layers, input_shape: Shape, name: str) -> list[tuple[Shape, Shape]]:
    """(input shape, output shape) of each layer of a chain; a layer that cannot
    take its input is an InputError naming it as ``name[j]``."""
    shapes, shape = [], tuple(input_shape)
    for j, layer in enumerate(layers):
        try:
            out = layer.output_shape(shape)
        except InputError as exc:
            raise exc.within(field_prefix=f"{name}[{j}]") from None
        shapes.append((shape, out))
        shape = out
    return shapes


#: the prefix of a residual block's shortcut parameters: "shortcut.<k>.<name>"
SHORTCUT = "shortcut."


#: residual blocks inside residual blocks, the most a model may nest (every
#: backend builds and differentiates them recursively; thousands of levels
#: would exhaust Python's recursion before a clear error could be given)
MAX_RESIDUAL_DEPTH = 32


@dataclass(frozen=True)
class Residual:
    """y = s(x) + f(x), f the chain of ``layers`` (a list of layer specs), s
    that of ``shortcut`` (the identity if empty)."""

    layers: tuple
    input_shape: Shape | None = None
    shortcut: tuple = ()
    type: ClassVar[str] = "residual"

    def __post_init__(self):
        object.__setattr__(self, "layers", _chain(self.layers, "layers", allow_empty=False))
        object.__setattr__(self, "shortcut", _chain(self.shortcut, "shortcut", allow_empty=True))
        nesting = 1 + max((layer.nesting for layer in self.layers + self.shortcut if isinstance(layer, Residual)),
                          default=0)
        if nesting > MAX_RESIDUAL_DEPTH:
            raise InputError(f"residual blocks nested more than {MAX_RESIDUAL_DEPTH} deep; at most "
                             f"{MAX_RESIDUAL_DEPTH} levels of residual blocks inside residual blocks", field="layers")
        object.__setattr__(self, "nesting", nesting)  # the levels of blocks, this one included

    def inner_shapes(self, input_shape: Shape) -> list[tuple[Shape, Shape]]:
        """(input shape, output shape) of each inner layer."""
        return chain_shapes(self.layers, input_shape, "layers")

    def shortcut_shapes(self, input_shape: Shape) -> list[tuple[Shape, Shape]]:
        """(input shape, output shape) of each shortcut layer."""
        return chain_shapes(self.shortcut, input_shape, "shortcut")

    def output_shape(self, input_shape: Shape) -> Shape:
        out = self.inner_shapes(input_shape)[-1][1]
        if not self.shortcut:
            if tuple(out) != tuple(input_shape):
                raise InputError(f"a residual block's layers must give back its input's shape "
                                 f"{format_shape(input_shape)} (it is added to their output), got "
                                 f"{format_shape(out)}; or give it a shortcut of that shape", field="layers")
            return tuple(input_shape)
        shortcut = self.shortcut_shapes(input_shape)[-1][1]
        if tuple(out) != tuple(shortcut):
            raise InputError(f"a residual block's layers must give the shape of its shortcut "
                             f"{format_shape(shortcut)} (the two are added), got {format_shape(out)}", field="layers")
        return tuple(out)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        main = {f"{j}.{name}": shape
                for j, (layer, (shape_in, _)) in enumerate(zip(self.layers, self.inner_shapes(input_shape)))
                for name, shape in layer.param_shapes(shape_in).items()}
        return {**main, **{f"{SHORTCUT}{k}.{name}": shape for k, (layer, (shape_in, _)) in
                           enumerate(zip(self.shortcut, self.shortcut_shapes(input_shape)))
                           for name, shape in layer.param_shapes(shape_in).items()}}

    def part(self, name: str):
        """(the inner or shortcut layer a flat parameter ``name`` belongs to, its own name there)."""
        head, rest = name.split(".", 1)
        if head + "." == SHORTCUT:
            k, rest = rest.split(".", 1)
            return self.shortcut[int(k)], rest
        return self.layers[int(head)], rest


def inner_parameters(flat: dict, j: int, prefix: str = "") -> dict:
    """The entries of a residual block's flat parameter dict that belong to
    its inner layer ``j`` (its shortcut's layer ``j`` with ``prefix =
    SHORTCUT``), under that layer's own names."""
    prefix = f"{prefix}{j}."
    return {name[len(prefix):]: value for name, value in flat.items() if name.startswith(prefix)}


TRANSFORMER_LAYERS = (LayerNormalization, SelfAttention, PositionEmbedding, GlobalAveragePool1D, Residual)
LAYER_TYPES.update({cls.type: cls for cls in TRANSFORMER_LAYERS})


def nested_layers(layers):
    """Every layer of ``layers``, those inside residual blocks and bidirectional
    wrappers included (depth first)."""
    for layer in layers:
        yield layer
        if isinstance(layer, Residual):
            yield from nested_layers(layer.layers)
            yield from nested_layers(layer.shortcut)
        if isinstance(layer, Bidirectional):
            yield layer.layer


def map_layers(layers, fn) -> tuple:
    """``layers`` with ``fn`` applied to every layer that is not a residual
    block, inside residual blocks too (the blocks rebuilt around the results)."""
    return tuple(replace(layer, layers=map_layers(layer.layers, fn), shortcut=map_layers(layer.shortcut, fn))
                 if isinstance(layer, Residual) else fn(layer) for layer in layers)
