"""The "Simple MNIST convnet" of keras-io.

Source: https://github.com/keras-team/keras-io, examples/vision/mnist_convnet.py (a Sequential
compiled with ``loss="categorical_crossentropy"`` on one-hot labels and ``optimizer="adam"``).
The Sequential below restates its layers; dlbench takes class indices for that loss.
"""

import keras
import numpy as np
from keras import layers

FRAMEWORK = "keras"
INPUT_SHAPE = (28, 28, 1)
OUTPUT = "softmax"
ONE_HOT_TARGETS = 10


def model():
    net = keras.Sequential([
        keras.Input(shape=INPUT_SHAPE),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    net.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 10, n)
