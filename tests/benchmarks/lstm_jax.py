"""A plain JAX training loop of the LSTM language-model benchmark network
(``chars-lstm``): a pytree of arrays, the embedding as a row gather, the LSTM
cell in ``lax.scan`` over time (input projection of every step in one matmul
first, the carry ``(h, c)``, gates i, f, c, o), a dense layer over every
position, ``optax.softmax_cross_entropy_with_integer_labels`` averaged over
every token, an optax Adam, one jitted step per batch with donated state
(``handwritten_jax``'s loop). ``make_loop(weights, x_train, y_train, scenario)``
returns ``train(indices) -> losses``."""

import jax
import jax.numpy as jnp
import optax

from handwritten_jax import _loop


def _forward(p, tokens):
    x = p["embeddings"][tokens]                               # (B, T, E)
    xw = jnp.swapaxes(x @ p["kernel"] + p["bias"], 0, 1)       # (T, B, 4u), time-major for the scan
    units = p["recurrent_kernel"].shape[0]

    def cell(carry, xw_t):
        h, c = carry
        z = xw_t + h @ p["recurrent_kernel"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((tokens.shape[0], units), x.dtype)
    _, hs = jax.lax.scan(cell, (zeros, zeros), xw)
    return jnp.swapaxes(hs, 0, 1) @ p["dense"][0] + p["dense"][1]


def make_loop(weights, x_train, y_train, scenario):
    embedding, lstm, dense = weights
    params = jax.tree_util.tree_map(jnp.asarray, {
        "embeddings": embedding["embeddings"], "kernel": lstm["kernel"],
        "recurrent_kernel": lstm["recurrent_kernel"], "bias": lstm["bias"],
        "dense": (dense["kernel"], dense["bias"])})
    return _loop(params, optax.adam(scenario.model.optimizer.learning_rate, eps=1e-7),
                 optax.softmax_cross_entropy_with_integer_labels,
                 jnp.asarray(x_train, jnp.int32), jnp.asarray(y_train, jnp.int32), False, _forward)
