"""A plain JAX training loop of the Transformer benchmark network: a pytree of
arrays, ``jax.nn.dot_product_attention``, ``jax.nn.gelu(approximate=True)``, an
optax Adam, one jitted step per batch with donated state (``handwritten_jax``'s
loop). ``make_loop(weights, x_train, y_train, scenario)`` returns ``train(indices) -> losses``."""

import jax
import jax.numpy as jnp
import optax

from handwritten_jax import _loop
from transformer_weights import num_heads, parts


def _layer_norm(x, gamma, beta):
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * gamma + beta


def _forward(heads: int):
    def forward(p, x):
        w, b = p["projection"]
        x = x @ w + b + p["positions"][:x.shape[1]]
        batch, length, d = x.shape
        for block in p["blocks"]:
            h = _layer_norm(x, *block["norm1"])
            q, k, v = ((h @ block[n][0] + block[n][1]).reshape(batch, length, heads, -1)
                       for n in ("query", "key", "value"))
            a = jax.nn.dot_product_attention(q, k, v).reshape(batch, length, -1)
            x = x + a @ block["output"][0] + block["output"][1]
            h = jax.nn.gelu(_layer_norm(x, *block["norm2"]) @ block["up"][0] + block["up"][1], approximate=True)
            x = x + h @ block["down"][0] + block["down"][1]
        w, b = p["classifier"]
        return _layer_norm(x, *p["norm"]).mean(axis=1) @ w + b
    return forward


def make_loop(weights, x_train, y_train, scenario):
    heads = num_heads(scenario)
    params = jax.tree_util.tree_map(jnp.asarray, parts(weights))
    return _loop(params, optax.adam(0.001, eps=1e-7), optax.softmax_cross_entropy_with_integer_labels,
                 jnp.asarray(x_train, jnp.float32), jnp.asarray(y_train, jnp.int32), False, _forward(heads))
