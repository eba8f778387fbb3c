"""The "TensorFlow 2 quickstart for beginners" model: Flatten, Dense, Dropout, logits out.

Source: https://github.com/tensorflow/docs, site/en/tutorials/quickstart/beginner.ipynb
(``tf.keras.models.Sequential`` with ``Flatten(input_shape=(28, 28))``, compiled with
``optimizer='adam'`` and ``SparseCategoricalCrossentropy(from_logits=True)``).
"""

import keras
import numpy as np

FRAMEWORK = "keras"
INPUT_SHAPE = (28, 28)
OUTPUT = "logits"


def model():
    net = keras.models.Sequential([
        keras.Input(shape=INPUT_SHAPE),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    net.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 10, n)
