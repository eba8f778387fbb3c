"""The 1-D convnet text classifier of keras-io ("Text classification from scratch", IMDB):
Embedding, two strided Conv1D, global max pooling, a sigmoid out.

Source: https://github.com/keras-team/keras-io, examples/nlp/text_classification_from_scratch.py
(``max_features = 20000``, ``embedding_dim = 128``, ``sequence_length = 500``; compiled with
``loss="binary_crossentropy"``, ``optimizer="adam"``). Its input takes sequences of any length
(``shape=(None,)``), so it is read at ``input_shape=(500,)``, the length its vectorizer makes.
"""

import keras
import numpy as np
from keras import layers

FRAMEWORK = "keras"
MAX_FEATURES, EMBEDDING_DIM = 20000, 128
INPUT_SHAPE = (500,)
OUTPUT = "sigmoid"


def model():
    inputs = keras.Input(shape=(None,), dtype="int64")
    x = layers.Embedding(MAX_FEATURES, EMBEDDING_DIM)(inputs)
    x = layers.Dropout(0.5)(x)
    x = layers.Conv1D(128, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.Conv1D(128, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)
    net = keras.Model(inputs, predictions)
    net.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, MAX_FEATURES, (n, *INPUT_SHAPE)), rng.integers(0, 2, n)
