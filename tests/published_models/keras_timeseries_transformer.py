"""The Transformer time-series classifier of keras-io: post-norm encoder blocks (attention,
dropout, LayerNormalization(1e-6), ``x + inputs``; a Conv1D feed-forward, ``x + res``), global
average pooling and an MLP head.

Source: https://github.com/keras-team/keras-io, examples/timeseries/timeseries_classification_transformer.py
(``transformer_encoder``, ``build_model(head_size=256, num_heads=4, ff_dim=4,
num_transformer_blocks=4, mlp_units=[128], mlp_dropout=0.4, dropout=0.25)``, compiled with
``sparse_categorical_crossentropy`` and ``Adam(learning_rate=1e-4)``). Refused as published: each
of the four MultiHeadAttention layers has ``dropout=0.25`` on its attention weights, which the spec's
attention does not have; all four are listed at once. Everything else is read: with ``dropout=0`` the
same model converts exactly (tests/test_model_graphs.py).
"""

import keras
import numpy as np
from keras import layers

FRAMEWORK = "keras"
INPUT_SHAPE = (500, 1)
OUTPUT = "softmax"
N_CLASSES = 2
PARTS = 4  # parts the one error lists
REFUSED = ["'multi_head_attention", "dropout=0.25", "the spec's attention has no dropout"]


def transformer_encoder(inputs, head_size, num_heads, ff_dim, dropout=0):
    x = layers.MultiHeadAttention(key_dim=head_size, num_heads=num_heads, dropout=dropout)(inputs, inputs)
    x = layers.Dropout(dropout)(x)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    res = x + inputs
    x = layers.Conv1D(filters=ff_dim, kernel_size=1, activation="relu")(res)
    x = layers.Dropout(dropout)(x)
    x = layers.Conv1D(filters=inputs.shape[-1], kernel_size=1)(x)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    return x + res


def build_model(input_shape, head_size, num_heads, ff_dim, num_transformer_blocks, mlp_units, dropout=0,
                mlp_dropout=0):
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for _ in range(num_transformer_blocks):
        x = transformer_encoder(x, head_size, num_heads, ff_dim, dropout)
    x = layers.GlobalAveragePooling1D(data_format="channels_last")(x)
    for dim in mlp_units:
        x = layers.Dense(dim, activation="relu")(x)
        x = layers.Dropout(mlp_dropout)(x)
    outputs = layers.Dense(N_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def model():
    net = build_model(INPUT_SHAPE, head_size=256, num_heads=4, ff_dim=4, num_transformer_blocks=4,
                      mlp_units=[128], mlp_dropout=0.4, dropout=0.25)
    net.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=1e-4),
                metrics=["sparse_categorical_accuracy"])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 2, n)
