"""The Paddle backend's Transformer layers (conventions in :mod:`dlbench.network.transformer`).

Every parameter is held in the canonical layout under its canonical name, so
weights go in and out unchanged; a projection is ``x @ W + b``.

* layer_norm: ``F.layer_norm`` over the last axis with the spec's epsilon
  (biased variance, as the spec). Paddle's kernel refuses an epsilon above
  1e-3 ("should be between 0.0 and 0.001"), which the spec allows: such a
  layer is computed from Paddle ops (mean, biased variance, rsqrt).
* self_attention: Paddle's fused ``F.scaled_dot_product_attention`` on
  (B, T, H, K) (Paddle's layout: heads after time), ``scale = 1/sqrt(key_dim)``
  given explicitly, no dropout, ``is_causal`` for the lower-triangle mask.
  ``nn.MultiHeadAttention`` would need ``key_dim = d / heads``, which the spec
  does not require, so it is not used.
* position_embedding: ``x + P[:T]``; global_average_pool1d: the mean over time.
* residual: ``s(x) + f(x)``, the inner and shortcut layers built by the
  network's own builder; their parameters named ``"<j>.<name>"`` and
  ``"shortcut.<k>.<name>"``.
"""

from __future__ import annotations

import math

import paddle
from paddle import nn
from paddle.nn import functional as F

from dlbench.network import GlobalAveragePool1D, LayerNormalization, PositionEmbedding, Residual, SelfAttention
from dlbench.network.transformer import SHORTCUT


#: the largest epsilon Paddle's fused layer_norm kernel accepts.
FUSED_LAYER_NORM_MAX_EPSILON = 1e-3


class LayerNorm(nn.Layer):
    def __init__(self, spec, features: int):
        super().__init__()
        self.epsilon = spec.epsilon
        self.gamma = self.create_parameter([features])
        self.beta = self.create_parameter([features], is_bias=True)

    def forward(self, x):
        if self.epsilon <= FUSED_LAYER_NORM_MAX_EPSILON:
            return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.epsilon)
        centred = x - x.mean(axis=-1, keepdim=True)
        variance = (centred * centred).mean(axis=-1, keepdim=True)
        return centred * paddle.rsqrt(variance + self.epsilon) * self.gamma + self.beta


class MultiHeadSelfAttention(nn.Layer):
    """Projections ``x @ W + b`` in the canonical (d, H*K) layout, then the fused attention over every head."""

    PARTS = ("query", "key", "value")

    def __init__(self, spec, features: int):
        super().__init__()
        self.heads, self.key_dim, self.causal = spec.num_heads, spec.key_dim, spec.causal
        inner = spec.num_heads * spec.key_dim
        for part in self.PARTS:
            setattr(self, f"{part}_kernel", self.create_parameter([features, inner]))
            setattr(self, f"{part}_bias", self.create_parameter([inner], is_bias=True))
        self.output_kernel = self.create_parameter([inner, features])
        self.output_bias = self.create_parameter([features], is_bias=True)

    def forward(self, x):
        batch, length = x.shape[0], x.shape[1]
        q, k, v = (F.linear(x, getattr(self, f"{p}_kernel"), getattr(self, f"{p}_bias"))
                   .reshape([batch, length, self.heads, self.key_dim]) for p in self.PARTS)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=self.causal, training=self.training,
                                           scale=1.0 / math.sqrt(self.key_dim))
        return F.linear(a.reshape([batch, length, self.heads * self.key_dim]), self.output_kernel, self.output_bias)


class LearnedPositionEmbedding(nn.Layer):
    def __init__(self, spec, features: int):
        super().__init__()
        self.position_embeddings = self.create_parameter([spec.max_length, features])

    def forward(self, x):
        return x + self.position_embeddings[:x.shape[1]]


class TimeAveragePool(nn.Layer):
    def forward(self, x):
        return x.mean(axis=1)


class ResidualBlock(nn.Layer):
    """s(x) + f(x) (s the identity without a shortcut); ``holders`` maps an inner
    layer's flat-name prefix (``"<j>."``, ``"shortcut.<k>."``) to (its spec, the layer holding its parameters)."""

    def __init__(self, spec, in_shape, build):
        super().__init__()
        self.holders = {}
        self.inner = self._chain(spec.layers, spec.inner_shapes(in_shape), "", build)
        self.shortcut = self._chain(spec.shortcut, spec.shortcut_shapes(in_shape), SHORTCUT, build) \
            if spec.shortcut else None

    def _chain(self, layers, shapes, prefix: str, build) -> nn.Sequential:
        modules = []
        for j, (layer, (shape, _)) in enumerate(zip(layers, shapes)):
            parts, holder = build(layer, shape)
            modules.extend(parts)
            if layer.param_shapes(shape):
                self.holders[f"{prefix}{j}."] = (layer, holder)
        return nn.Sequential(*modules)

    def forward(self, x):
        return (x if self.shortcut is None else self.shortcut(x)) + self.inner(x)


def transformer_modules(layer, in_shape, build) -> list:
    """The layer of one Transformer spec layer; ``build(layer, in_shape)`` builds a
    residual block's inner layer: (its layers with its activation, the one holding its parameters)."""
    features = in_shape[-1]
    if isinstance(layer, LayerNormalization):
        return [LayerNorm(layer, features)]
    if isinstance(layer, SelfAttention):
        return [MultiHeadSelfAttention(layer, features)]
    if isinstance(layer, PositionEmbedding):
        return [LearnedPositionEmbedding(layer, features)]
    if isinstance(layer, GlobalAveragePool1D):
        return [TimeAveragePool()]
    if isinstance(layer, Residual):
        return [ResidualBlock(layer, in_shape, build)]
    raise NotImplementedError(f"the paddle backend cannot build {layer.type!r} layers")


def canonical_tensors(holder, layer, holder_tensors) -> dict[str, list]:
    """One Transformer layer's parameters by canonical name; a residual block's inner ones as ``"<j>.<name>"``."""
    if isinstance(layer, Residual):
        return {f"{prefix}{name}": tensors for prefix, (inner, inner_holder) in holder.holders.items()
                for name, tensors in holder_tensors(inner_holder, inner).items()}
    return {name: [tensor] for name, tensor in holder.named_parameters()}
