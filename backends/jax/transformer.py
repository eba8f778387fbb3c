"""The JAX backend's Transformer layers (conventions in :mod:`dlbench.network.transformer`),
as builders like those of :mod:`~dlbench_backends.jax.network`: each returns
``apply(p, s, x, training, key) -> (y, s)`` over channels-last (B, T, d) arrays,
the parameters in the canonical layout under their canonical names.

* layer_norm: mean and biased variance over the last axis, ``(x - mean) *
  rsqrt(var + eps) * gamma + beta`` (the spec's epsilon, 1e-5 by default;
  flax's LayerNorm defaults to 1e-6).
* self_attention: projections ``jnp.dot(x, W) + b`` at the network's
  precision, then the fused ``jax.nn.dot_product_attention`` on (B, T, H, K)
  (its own BTNH layout, so no transposes) with ``scale = 1/sqrt(key_dim)``
  given explicitly and ``is_causal`` for the lower-triangle mask; XLA's
  implementation (no dropout, float32 softmax). It takes no precision
  argument, so it is traced under ``jax.default_matmul_precision`` at the
  network's: else its two matmuls would take XLA's DEFAULT, TF32 on a GPU,
  in an fp32 run.
* residual: ``s(x) + f(x)`` (``s`` the identity without a shortcut), the inner
  and shortcut layers built by the network's builder (``build``); parameters
  and moving statistics ``"<j>.<name>"`` and ``"shortcut.<k>.<name>"`` are
  split per inner layer and joined back.
"""

import math

import jax
import jax.numpy as jnp

from dlbench.network import GlobalAveragePool1D, LayerNormalization, PositionEmbedding, Residual, SelfAttention
from dlbench.network.transformer import SHORTCUT, inner_parameters


def layer_norm_layer(layer, in_shape, precision, custom_vjp: bool = True):
    eps = layer.epsilon

    def apply(p, s, x, training, key):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + eps) * p["gamma"] + p["beta"], s
    return apply


def attention_layer(layer, in_shape, precision, custom_vjp: bool = True):
    heads, key_dim, causal = layer.num_heads, layer.key_dim, layer.causal
    scale = 1.0 / math.sqrt(key_dim)
    matmul_precision = "highest" if precision.lax == jax.lax.Precision.HIGHEST else "default"

    def apply(p, s, x, training, key):
        b, t, _ = x.shape

        def project(part):
            z = precision.dot(x, p[f"{part}_kernel"]) + p[f"{part}_bias"]
            return z.reshape(b, t, heads, key_dim)

        q, k, v = (precision.cast(project(part)) for part in ("query", "key", "value"))
        with jax.default_matmul_precision(matmul_precision):
            a = jax.nn.dot_product_attention(q, k, v, scale=scale, is_causal=causal, implementation="xla")
        return precision.dot(a.reshape(b, t, heads * key_dim), p["output_kernel"]) \
            + p["output_bias"], s
    return apply


def position_embedding_layer(layer, in_shape, precision, custom_vjp: bool = True):
    length = in_shape[0]

    def apply(p, s, x, training, key):
        return x + p["position_embeddings"][:length], s
    return apply


def global_average_pool_layer(layer, in_shape, precision, custom_vjp: bool = True):
    def apply(p, s, x, training, key):
        return jnp.mean(x, axis=1), s
    return apply


def residual_layer(layer, in_shape, precision, custom_vjp: bool = True, *, build):
    """s(x) + f(x) (s the identity without a shortcut); ``build(layer, in_shape, precision,
    custom_vjp)`` -> (apply, activation) of an inner or shortcut layer."""
    inner = [build(sub, shape, precision, custom_vjp) for sub, (shape, _) in
             zip(layer.layers, layer.inner_shapes(in_shape))]
    shortcut = [build(sub, shape, precision, custom_vjp) for sub, (shape, _) in
                zip(layer.shortcut, layer.shortcut_shapes(in_shape))]

    def chain(built, prefix: str, key_offset: int, p, s, x, training, key, new_stats):
        for j, (inner_apply, f) in enumerate(built):
            sub_key = None if key is None else jax.random.fold_in(key, key_offset + j)
            x, sub_stats = inner_apply(inner_parameters(p, j, prefix), inner_parameters(s, j, prefix), x, training,
                                       sub_key)
            new_stats.update({f"{prefix}{j}.{name}": value for name, value in sub_stats.items()})
            x = f(x)
        return x

    def apply(p, s, x, training, key):
        new_stats = {}
        y = chain(inner, "", 0, p, s, x, training, key, new_stats)
        x = chain(shortcut, SHORTCUT, len(inner), p, s, x, training, key, new_stats)
        return x + y, new_stats
    return apply


TRANSFORMER_BUILDERS = {LayerNormalization: layer_norm_layer, SelfAttention: attention_layer,
                        PositionEmbedding: position_embedding_layer,
                        GlobalAveragePool1D: global_average_pool_layer, Residual: residual_layer}
