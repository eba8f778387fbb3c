"""The TensorFlow backend's Transformer layers (conventions in :mod:`dlbench.network.transformer`):
Keras layers whose variables have the canonical names and layouts, so the
initial weights are assigned as they are.

* layer_norm: ``keras.layers.LayerNormalization(epsilon=spec's)`` (its
  ``gamma``, ``beta``; biased variance over the last axis). Keras's own
  default epsilon, 1e-3, is never used.
* self_attention: explicit TensorFlow ops, ``x @ W + b`` per projection in
  the canonical (d, H*K) layout, scores ``Q K^T / sqrt(key_dim)`` per head
  on (B, H, T, K), the causal mask as the lower triangle
  (``tf.linalg.band_part(ones, -1, 0)``, -inf above it) and a float32
  softmax (under a mixed policy too: the products in the compute dtype, the
  scores cast to float32, the probabilities back for their product with V).
  ``keras.layers.MultiHeadAttention`` computes the same maths but
  keeps its kernels as (d, H, K) and (H, K, d), multiplies the query by the
  scale before the product, and takes two inputs, which a Sequential cannot
  give; TensorFlow has no fused attention kernel on CPU to use instead.
* position_embedding: a layer adding ``position_embeddings[:T]``;
  global_average_pool1d: ``keras.layers.GlobalAveragePooling1D``.
* residual: a layer calling its inner Keras layers in order and adding its
  input, or what its shortcut's layers make of it;
  ``variable("<j>.<name>")`` (``"shortcut.<k>.<name>"``) finds an inner layer's variable.
"""

from __future__ import annotations

import math

from dlbench.network import GlobalAveragePool1D, LayerNormalization, PositionEmbedding, Residual, SelfAttention
from dlbench.network.transformer import SHORTCUT
from dlbench_backends.tensorflow.core import framework
from dlbench_backends.tensorflow.sequence import parameter_holder

tf, keras = framework()


def layer_variable(layer, name: str):
    """The Keras variable of ``layer`` holding the canonical parameter ``name``."""
    if isinstance(layer, ResidualBlock):
        return layer.variable(name)
    if isinstance(layer, keras.layers.Bidirectional):  # "forward.<name>", "backward.<name>"
        direction, inner = name.split(".", 1)
        return layer_variable(getattr(layer, f"{direction}_layer"), inner)
    return getattr(parameter_holder(layer), name)


class SelfAttentionLayer(keras.layers.Layer):
    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.key_dim, self.causal = spec.num_heads, spec.key_dim, spec.causal

    def build(self, input_shape):
        d, inner = input_shape[-1], self.heads * self.key_dim
        for part in ("query", "key", "value"):
            setattr(self, f"{part}_kernel", self.add_weight((d, inner), "zeros", name=f"{part}_kernel"))
            setattr(self, f"{part}_bias", self.add_weight((inner,), "zeros", name=f"{part}_bias"))
        self.output_kernel = self.add_weight((inner, d), "zeros", name="output_kernel")
        self.output_bias = self.add_weight((d,), "zeros", name="output_bias")

    def compute_output_shape(self, input_shape):
        return input_shape

    def _heads(self, x, part: str):
        b, t = tf.shape(x)[0], tf.shape(x)[1]
        z = tf.tensordot(x, getattr(self, f"{part}_kernel"), 1) + getattr(self, f"{part}_bias")
        return tf.transpose(tf.reshape(z, (b, t, self.heads, self.key_dim)), (0, 2, 1, 3))

    def call(self, x):
        q, k, v = (self._heads(x, part) for part in ("query", "key", "value"))
        # the softmax in float32 whatever the policy (its inputs and outputs in the compute dtype)
        scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) * (1.0 / math.sqrt(self.key_dim))
        if self.causal:
            t = tf.shape(x)[1]
            below = tf.linalg.band_part(tf.ones((t, t), tf.bool), -1, 0)
            scores = tf.where(below, scores, tf.constant(-math.inf, scores.dtype))
        a = tf.matmul(tf.cast(tf.nn.softmax(scores, axis=-1), v.dtype), v)
        a = tf.reshape(tf.transpose(a, (0, 2, 1, 3)), (tf.shape(x)[0], tf.shape(x)[1], self.heads * self.key_dim))
        return tf.tensordot(a, self.output_kernel, 1) + self.output_bias


class PositionEmbeddingLayer(keras.layers.Layer):
    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self.max_length = spec.max_length

    def build(self, input_shape):
        self.position_embeddings = self.add_weight((self.max_length, input_shape[-1]), "zeros",
                                                   name="position_embeddings")

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x):
        return x + self.position_embeddings[:tf.shape(x)[1]]


class ResidualBlock(keras.layers.Layer):
    """s(x) + f(x) (s the identity without a shortcut); ``inner[j]`` are the Keras
    layers of inner spec layer j, ``shortcut[k]`` those of shortcut layer k."""

    def __init__(self, inner: list, shortcut: list, **kwargs):
        super().__init__(**kwargs)
        self.inner, self.shortcut = inner, shortcut
        self.chain = [k for layers in inner for k in layers]
        self.shortcut_chain = [k for layers in shortcut for k in layers]

    def build(self, input_shape):
        for chain in (self.chain, self.shortcut_chain):
            shape = input_shape
            for layer in chain:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self.chain:
            shape = layer.compute_output_shape(shape)
        return shape

    def call(self, x, training=None):
        y, s = x, x
        for layer in self.chain:
            y = layer(y, training=training)
        for layer in self.shortcut_chain:
            s = layer(s, training=training)
        return s + y

    def variable(self, name: str):
        head, inner = name.split(".", 1)
        if head + "." == SHORTCUT:
            k, inner = inner.split(".", 1)
            return layer_variable(self.shortcut[int(k)][-1], inner)
        return layer_variable(self.inner[int(head)][-1], inner)


def transformer_layers(layer, seed: int, build) -> list:
    """The Keras layers computing one Transformer spec layer (the last holds its
    parameters); ``build(layer, seed)`` gives an inner layer's Keras layers."""
    k = keras.layers
    if isinstance(layer, LayerNormalization):
        return [k.LayerNormalization(epsilon=layer.epsilon)]
    if isinstance(layer, SelfAttention):
        return [SelfAttentionLayer(layer)]
    if isinstance(layer, PositionEmbedding):
        return [PositionEmbeddingLayer(layer)]
    if isinstance(layer, GlobalAveragePool1D):
        return [k.GlobalAveragePooling1D()]
    if isinstance(layer, Residual):
        return [ResidualBlock([build(inner, seed * 31 + j) for j, inner in enumerate(layer.layers)],
                              [build(inner, seed * 37 + k) for k, inner in enumerate(layer.shortcut)])]
    raise NotImplementedError(f"the tensorflow backend cannot build {layer.type!r} layers")
