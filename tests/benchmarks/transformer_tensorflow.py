"""A plain Keras-on-TensorFlow training loop of the Transformer benchmark network:
``keras.layers.Dense`` (per position on (B, T, d)), ``LayerNormalization(epsilon=1e-5)``,
``MultiHeadAttention`` (its (d, H, K) kernels), GELU with ``approximate=True``, a
Keras Adam and one ``@tf.function`` step per batch (``handwritten_tensorflow``'s loop).
``make_loop(weights, x_train, y_train, scenario)`` returns ``train(indices) -> losses``."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from handwritten_tensorflow import _loop  # noqa: E402
from transformer_weights import num_heads, parts  # noqa: E402


class AddPositions(keras.layers.Layer):
    def build(self, input_shape):
        self.positions = self.add_weight(tuple(input_shape[1:]), "zeros")

    def call(self, x):
        return x + self.positions


def _dense(x, w, b, activation=None):
    layer = keras.layers.Dense(w.shape[1], activation=activation)
    y = layer(x)
    layer.set_weights([w, b])
    return y


def _norm(x, gamma, beta):
    layer = keras.layers.LayerNormalization(epsilon=1e-5)
    y = layer(x)
    layer.set_weights([gamma, beta])
    return y


def _block(x, w, heads: int):
    d = w["query"][0].shape[0]
    key_dim = w["query"][0].shape[1] // heads
    h = _norm(x, *w["norm1"])
    attention = keras.layers.MultiHeadAttention(heads, key_dim)
    a = attention(h, h)
    attention.set_weights([w["query"][0].reshape(d, heads, key_dim), w["query"][1].reshape(heads, key_dim),
                           w["key"][0].reshape(d, heads, key_dim), w["key"][1].reshape(heads, key_dim),
                           w["value"][0].reshape(d, heads, key_dim), w["value"][1].reshape(heads, key_dim),
                           w["output"][0].reshape(heads, key_dim, d), w["output"][1]])
    x = x + a
    gelu = lambda z: keras.activations.gelu(z, approximate=True)  # noqa: E731
    h = _dense(_norm(x, *w["norm2"]), *w["up"], activation=gelu)
    return x + _dense(h, *w["down"])


def make_loop(weights, x_train, y_train, scenario):
    heads = num_heads(scenario)
    p = parts(weights)
    inputs = keras.Input(x_train.shape[1:])
    x = _dense(inputs, *p["projection"])
    positions = AddPositions()
    x = positions(x)
    positions.set_weights([p["positions"][:x_train.shape[1]]])
    for block in p["blocks"]:
        x = _block(x, block, heads)
    x = keras.layers.GlobalAveragePooling1D()(_norm(x, *p["norm"]))
    model = keras.Model(inputs, _dense(x, *p["classifier"]))
    return _loop(model, keras.optimizers.Adam(learning_rate=0.001, epsilon=1e-7),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 tf.constant(x_train, tf.float32), tf.constant(y_train.astype("int64")))
