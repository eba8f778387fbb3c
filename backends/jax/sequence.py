"""The JAX backend's sequence layers; the canonical layouts (Keras's) are used as they are.

* Embedding: ``jnp.take(embeddings, ids, axis=0)``; its gradient (JAX's
  own) is the scatter-add of the rows.
* SimpleRNN / LSTM / GRU: :mod:`~dlbench_backends.jax.recurrent`.
"""

from __future__ import annotations

import jax.numpy as jnp

from dlbench.spec.sequence import GRU, LSTM, Embedding, SimpleRNN
from dlbench_backends.jax.recurrent import recurrent_layer


def embedding_layer(layer, in_shape, precision, custom_vjp: bool = True):
    def apply(p, s, x, training, key):
        return jnp.take(p["embeddings"], x, axis=0), s
    return apply


SEQUENCE_BUILDERS = {Embedding: embedding_layer, SimpleRNN: recurrent_layer, LSTM: recurrent_layer,
                     GRU: recurrent_layer}
