"""The TensorFlow backend's sequence layers: Keras's own ``Embedding``
(embeddings (vocab, dim), the canonical layout, assigned as it is) and the
recurrent layers of :mod:`~dlbench_backends.tensorflow.recurrent`, wrapped in
``keras.layers.Bidirectional(merge_mode="concat")`` for a bidirectional one
(its ``forward_layer`` and ``backward_layer`` hold ``"forward.<name>"`` and
``"backward.<name>"``). Keras
gives an embedding's gradient as ``tf.IndexedSlices``, made dense here for
the optimizer.
"""

from __future__ import annotations

from dlbench.network.sequence import Bidirectional, Embedding
from dlbench_backends.tensorflow.core import framework
from dlbench_backends.tensorflow.recurrent import recurrent_layer

tf, keras = framework()

def sequence_layers(layer) -> list:
    """The Keras layer computing one sequence layer."""
    k = keras.layers
    if isinstance(layer, Embedding):
        return [k.Embedding(layer.input_dim, layer.output_dim, embeddings_initializer="zeros")]
    if isinstance(layer, Bidirectional):  # Keras's own: the backward output flipped back, concatenated after
        return [k.Bidirectional(recurrent_layer(layer.layer), merge_mode="concat")]
    return [recurrent_layer(layer)]


def parameter_holder(keras_layer):
    """The object whose attributes are a Keras layer's variables (a recurrent layer's cell)."""
    return keras_layer.cell if isinstance(keras_layer, keras.layers.RNN) else keras_layer


def dense_gradients(grads: list) -> list:
    """An embedding's gradient comes as tf.IndexedSlices (the rows of the batch's
    ids); the optimizer's dense update takes it as the full (vocab, dim) tensor."""
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
