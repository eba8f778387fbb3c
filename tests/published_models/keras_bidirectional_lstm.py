"""The bidirectional LSTM of keras-io ("Bidirectional LSTM on IMDB").

Source: https://github.com/keras-team/keras-io, examples/nlp/bidirectional_lstm_imdb.py
(``max_features = 20000``, ``maxlen = 200``; ``loss="binary_crossentropy"``, ``optimizer="adam"``).
Refused: the spec's recurrent layers run forward only, and both Bidirectional wrappers are named.
"""

import keras
import numpy as np
from keras import layers

FRAMEWORK = "keras"
MAX_FEATURES = 20000
INPUT_SHAPE = (200,)
OUTPUT = "sigmoid"
PARTS = 2  # parts the one error lists
REFUSED = ["'bidirectional', Bidirectional): Bidirectional layers cannot be read",
           "'bidirectional_1', Bidirectional)"]


def model():
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(MAX_FEATURES, 128)(inputs)
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(64))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    net = keras.Model(inputs, outputs)
    net.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, MAX_FEATURES, (n, *INPUT_SHAPE)), rng.integers(0, 2, n)
