"""The PyTorch backend's Transformer layers (conventions in :mod:`dlbench.network.transformer`).

Every parameter is held in the canonical layout under its canonical name
(``gamma``, ``query_kernel`` (d, H*K), ``position_embeddings`` ...), so
weights go in and out unchanged; a projection is ``x @ W + b``.

* layer_norm: ``F.layer_norm`` over the last axis (biased variance, the
  spec's epsilon, 1e-5 by default: torch's own default too).
* self_attention: the fused ``F.scaled_dot_product_attention`` on
  (B, H, T, K) with ``scale = 1/sqrt(key_dim)`` given explicitly,
  ``dropout_p = 0`` and ``is_causal`` for the causal mask, which is torch's
  lower triangle ``j <= i`` (top-left aligned; queries and keys have the same
  length here, so it is the spec's mask). It computes what the spec says: on
  CPU a flash-attention kernel in float32 with an online softmax (another
  summation order than NumPy's, same maths). ``nn.MultiheadAttention`` would
  hold one (3d, d) in-projection and needs ``key_dim = d / heads``, which the
  spec does not require, so it is not used.
* residual: ``s(x) + f(x)`` (``s`` the identity without a shortcut) with the
  inner and shortcut layers built by the network's own builder; its
  parameters are theirs, named ``"<j>.<name>"`` and ``"shortcut.<k>.<name>"``.
* Layout: a network whose input is (time, features) runs, like the 1-D
  convolutions, on (N, C, 1, L) views of channels-last memory; these layers
  take such a 4-D tensor as the (N, L, C) it is in memory (a free view) and
  give their output back the same way. On (N, T, F) tensors (after an
  embedding) they work as they are.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from dlbench.network import GlobalAveragePool1D, LayerNormalization, PositionEmbedding, Residual, SelfAttention
from dlbench.network.transformer import SHORTCUT


def as_sequence(x):
    """(N, C, 1, L) -> the (N, L, C) view it is in channels-last memory; 3-D unchanged."""
    return x.squeeze(2).transpose(1, 2) if x.dim() == 4 else x


def like_input(y, x):
    """A (N, L, C) result in the layout of the input ``x``."""
    return y.transpose(1, 2).unsqueeze(2) if x.dim() == 4 else y


class PositionwiseLinear(nn.Linear):
    """A Dense on (time, features) in a channels-first network (N, C, 1, L): the
    linear map of every position's features (nn.Linear on the (N, L, C) view)."""

    def forward(self, x):
        return like_input(F.linear(as_sequence(x), self.weight, self.bias), x)


def _parameter(shape, device):
    return nn.Parameter(torch.empty(shape, device=device, dtype=torch.float32))


class LayerNorm(nn.Module):
    def __init__(self, spec, features: int, device):
        super().__init__()
        self.epsilon = spec.epsilon
        self.gamma, self.beta = _parameter((features,), device), _parameter((features,), device)

    def forward(self, x):
        y = F.layer_norm(as_sequence(x), self.gamma.shape, self.gamma, self.beta, self.epsilon)
        return like_input(y, x)


class MultiHeadSelfAttention(nn.Module):
    """Projections ``x @ W + b`` in the canonical (d, H*K) layout, then the fused
    scaled dot-product attention over every head at once."""

    def __init__(self, spec, features: int, device):
        super().__init__()
        self.heads, self.key_dim, self.causal = spec.num_heads, spec.key_dim, spec.causal
        inner = spec.num_heads * spec.key_dim
        for part in ("query", "key", "value"):
            setattr(self, f"{part}_kernel", _parameter((features, inner), device))
            setattr(self, f"{part}_bias", _parameter((inner,), device))
        self.output_kernel = _parameter((inner, features), device)
        self.output_bias = _parameter((features,), device)

    def _heads(self, x, part: str):
        z = torch.addmm(getattr(self, f"{part}_bias"), x, getattr(self, f"{part}_kernel"))
        return z.view(self.batch, -1, self.heads, self.key_dim).transpose(1, 2)  # (B, H, T, K)

    def forward(self, x):
        seq = as_sequence(x)
        self.batch, length, features = seq.shape
        flat = seq.reshape(-1, features)
        q, k, v = (self._heads(flat, part) for part in ("query", "key", "value"))
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=self.causal,
                                           scale=1.0 / math.sqrt(self.key_dim))
        y = torch.addmm(self.output_bias, a.transpose(1, 2).reshape(-1, self.heads * self.key_dim),
                        self.output_kernel)
        return like_input(y.view(self.batch, length, features), x)


class LearnedPositionEmbedding(nn.Module):
    def __init__(self, spec, features: int, device):
        super().__init__()
        self.position_embeddings = _parameter((spec.max_length, features), device)

    def forward(self, x):
        seq = as_sequence(x)
        return like_input(seq + self.position_embeddings[:seq.shape[1]], x)


class TimeAveragePool(nn.Module):
    def forward(self, x):
        return as_sequence(x).mean(dim=1)


class ResidualBlock(nn.Module):
    """s(x) + f(x) (s the identity without a shortcut); ``holders`` maps an inner
    layer's flat-name prefix (``"<j>."``, ``"shortcut.<k>."``) to the module holding its parameters."""

    def __init__(self, spec, in_shape, build):
        super().__init__()
        self.holders = {}
        self.inner = self._chain(spec.layers, spec.inner_shapes(in_shape), "", build)
        self.shortcut = self._chain(spec.shortcut, spec.shortcut_shapes(in_shape), SHORTCUT, build) \
            if spec.shortcut else None

    def _chain(self, layers, shapes, prefix: str, build) -> nn.Sequential:
        modules = []
        for j, (layer, (shape, out_shape)) in enumerate(zip(layers, shapes)):
            parts, holder = build(layer, shape, out_shape)
            modules.extend(parts)
            if layer.param_shapes(shape):
                self.holders[f"{prefix}{j}."] = (layer, holder)
        return nn.Sequential(*modules)

    def forward(self, x):
        return (x if self.shortcut is None else self.shortcut(x)) + self.inner(x)


def transformer_modules(layer, in_shape, device, build) -> list:
    """The modules of one Transformer spec layer (the last one, or a residual
    block, holds its parameters); ``build(layer, in_shape, out_shape)`` builds an
    inner layer of a residual block: (its modules with its activation, the one
    holding its parameters)."""
    features = in_shape[-1]
    if isinstance(layer, LayerNormalization):
        return [LayerNorm(layer, features, device)]
    if isinstance(layer, SelfAttention):
        return [MultiHeadSelfAttention(layer, features, device)]
    if isinstance(layer, PositionEmbedding):
        return [LearnedPositionEmbedding(layer, features, device)]
    if isinstance(layer, GlobalAveragePool1D):
        return [TimeAveragePool()]
    if isinstance(layer, Residual):
        return [ResidualBlock(layer, in_shape, build)]
    raise NotImplementedError(f"the torch backend cannot build {layer.type!r} layers")


def canonical_tensors(module, layer, module_tensors) -> dict:
    """One Transformer layer's parameters by canonical name (already canonical
    layouts); a residual block's inner ones as ``"<j>.<name>"``."""
    if isinstance(layer, Residual):
        return {f"{prefix}{name}": tensor for prefix, (inner, holder) in module.holders.items()
                for name, tensor in module_tensors(holder, inner).items()}
    return dict(module.named_parameters())
