"""A plain JAX training loop of the BERT-style encoder: a pytree of arrays,
``jnp.take`` for the embeddings, ``jax.nn.dot_product_attention``,
``jax.nn.gelu(approximate=False)``, post-norm blocks, optax's ``adamw``
(weight decay 0 for an ``adam`` scenario: Adam) at a warm-up then linear decay
joined from two ``linear_schedule`` pieces where the scenario has one, one
jitted step per batch with donated state (``handwritten_jax``'s loop).
``make_loop(weights, x_train, y_train, scenario)`` returns ``train(indices) -> losses``."""

import jax
import jax.numpy as jnp
import optax

from bert_weights import adamw_recipe, parts, settings
from handwritten_jax import _loop


def _forward(heads: int, epsilon: float):
    def norm(x, gamma, beta):
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + epsilon) * gamma + beta

    def forward(p, tokens):
        x = norm(jnp.take(p["embeddings"], tokens, axis=0) + p["positions"][:tokens.shape[1]], *p["norm"])
        batch, length, _ = x.shape
        for layer in p["layers"]:
            q, k, v = ((x @ layer[n][0] + layer[n][1]).reshape(batch, length, heads, -1)
                       for n in ("query", "key", "value"))
            a = jax.nn.dot_product_attention(q, k, v).reshape(batch, length, -1)
            x = norm(x + a @ layer["output"][0] + layer["output"][1], *layer["norm1"])
            h = jax.nn.gelu(x @ layer["up"][0] + layer["up"][1], approximate=False)
            x = norm(x + h @ layer["down"][0] + layer["down"][1], *layer["norm2"])
        pooled = jnp.tanh(x.mean(axis=1) @ p["pooler"][0] + p["pooler"][1])
        return pooled @ p["classifier"][0] + p["classifier"][1]
    return forward


def make_loop(weights, x_train, y_train, scenario):
    params = jax.tree_util.tree_map(jnp.asarray, parts(weights))
    adam = adamw_recipe(scenario)
    learning_rate = adam["learning_rate"]
    if adam["warmup_steps"]:
        warmup, decay = adam["warmup_steps"], adam["decay_steps"]
        learning_rate = optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup),
                                              optax.linear_schedule(learning_rate, adam["alpha"] * learning_rate,
                                                                    decay - warmup)], [warmup])
    optimizer = optax.adamw(learning_rate, b1=adam["beta_1"], b2=adam["beta_2"], eps=adam["epsilon"],
                            weight_decay=adam["weight_decay"])
    return _loop(params, optimizer, optax.softmax_cross_entropy_with_integer_labels,
                 jnp.asarray(x_train, jnp.int32), jnp.asarray(y_train, jnp.int32), False,
                 _forward(*settings(scenario)))
