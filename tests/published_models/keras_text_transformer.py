"""The Transformer text classifier of keras-io ("Text classification with Transformer", IMDB),
built of two custom layers.

Source: https://github.com/keras-team/keras-io, examples/nlp/text_classification_with_transformer.py
(``TransformerBlock`` and ``TokenAndPositionEmbedding``, subclasses of ``layers.Layer``;
``vocab_size = 20000``, ``maxlen = 200``, ``embed_dim = 32``, ``num_heads = 2``, ``ff_dim = 32``;
``optimizer="adam"``, ``loss="sparse_categorical_crossentropy"``). Refused: a custom layer's ``call``
is Python code that Keras does not expose as a graph of layers, so both are named. Its encoder
block written as a functional model of built-in layers (attention, ``+``, LayerNormalization,
Dense) is read exactly; tests/test_model_graphs.py reads such a block.
"""

import keras
import numpy as np
from keras import layers, ops

FRAMEWORK = "keras"
VOCAB_SIZE, MAXLEN, EMBED_DIM, NUM_HEADS, FF_DIM = 20000, 200, 32, 2, 32
INPUT_SHAPE = (MAXLEN,)
OUTPUT = "softmax"
PARTS = 2  # parts the one error lists
REFUSED = ["TokenAndPositionEmbedding): a custom layer", "TransformerBlock): a custom layer"]


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.dropout1(self.att(inputs, inputs))
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.dropout2(self.ffn(out1))
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = self.pos_emb(ops.arange(start=0, stop=ops.shape(x)[-1], step=1))
        return self.token_emb(x) + positions


def model():
    inputs = layers.Input(shape=(MAXLEN,))
    x = TokenAndPositionEmbedding(MAXLEN, VOCAB_SIZE, EMBED_DIM)(inputs)
    x = TransformerBlock(EMBED_DIM, NUM_HEADS, FF_DIM)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    net = keras.Model(inputs=inputs, outputs=outputs)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB_SIZE, (n, *INPUT_SHAPE)), rng.integers(0, 2, n)
