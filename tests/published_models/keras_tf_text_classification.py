"""The IMDB sentiment model of the TensorFlow tutorial "Basic text classification": Embedding,
Dropout, GlobalAveragePooling1D, Dropout, a sigmoid unit; a Sequential never built before it is read.

Source: https://github.com/tensorflow/docs, site/en/tutorials/keras/text_classification.ipynb
(``max_features = 10000``, ``embedding_dim = 16``, ``sequence_length = 250``;
``loss=losses.BinaryCrossentropy()``, ``optimizer='adam'``).
"""

import keras
import numpy as np
from keras import layers

FRAMEWORK = "keras"
MAX_FEATURES, EMBEDDING_DIM = 10000, 16
INPUT_SHAPE = (250,)
OUTPUT = "sigmoid"


def model():
    net = keras.Sequential([
        layers.Embedding(MAX_FEATURES, EMBEDDING_DIM),
        layers.Dropout(0.2),
        layers.GlobalAveragePooling1D(),
        layers.Dropout(0.2),
        layers.Dense(1, activation="sigmoid"),
    ])
    net.compile(loss=keras.losses.BinaryCrossentropy(), optimizer="adam",
                metrics=[keras.metrics.BinaryAccuracy(threshold=0.5)])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, MAX_FEATURES, (n, *INPUT_SHAPE)), rng.integers(0, 2, n)
