"""The JAX backend's sequence layers; the canonical layouts (Keras's) are used as they are.

* Embedding: ``jnp.take(embeddings, ids, axis=0)``; its gradient (JAX's
  own) is the scatter-add of the rows.
* SimpleRNN / LSTM / GRU: :mod:`~dlbench_backends.jax.recurrent`; a
  bidirectional one twice, the second time over ``jnp.flip(x, axis=1)``.
"""

from __future__ import annotations

import jax.numpy as jnp

from dlbench.network.sequence import GRU, LSTM, Bidirectional, Embedding, SimpleRNN
from dlbench.network.transformer import inner_parameters
from dlbench_backends.jax.recurrent import recurrent_layer


def embedding_layer(layer, in_shape, precision, custom_vjp: bool = True):
    def apply(p, s, x, training, key):
        return jnp.take(p["embeddings"], x, axis=0), s
    return apply


def bidirectional_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """The wrapped layer over x with the ``forward.`` parameters and over x
    reversed in time with the ``backward.`` ones (that output flipped back when
    it is a sequence), concatenated along the features."""
    inner = recurrent_layer(layer.layer, in_shape, precision, custom_vjp)

    def apply(p, s, x, training, key):
        ahead, _ = inner(inner_parameters(p, "forward"), {}, x, training, key)
        behind, _ = inner(inner_parameters(p, "backward"), {}, jnp.flip(x, axis=1), training, key)
        if layer.layer.return_sequences:
            behind = jnp.flip(behind, axis=1)
        return jnp.concatenate([ahead, behind], axis=-1), s
    return apply


SEQUENCE_BUILDERS = {Embedding: embedding_layer, SimpleRNN: recurrent_layer, LSTM: recurrent_layer,
                     GRU: recurrent_layer, Bidirectional: bidirectional_layer}
