"""The CIFAR-10 convnet of the TensorFlow tutorial "Convolutional Neural Network (CNN)".

Source: https://github.com/tensorflow/docs, site/en/tutorials/images/cnn.ipynb (three Conv2D with
two MaxPooling2D, Flatten, Dense(64), Dense(10); ``optimizer='adam'``,
``SparseCategoricalCrossentropy(from_logits=True)``).
"""

import keras
import numpy as np
from keras import layers

FRAMEWORK = "keras"
INPUT_SHAPE = (32, 32, 3)
OUTPUT = "logits"


def model():
    net = keras.models.Sequential()
    net.add(keras.Input(shape=INPUT_SHAPE))
    net.add(layers.Conv2D(32, (3, 3), activation="relu"))
    net.add(layers.MaxPooling2D((2, 2)))
    net.add(layers.Conv2D(64, (3, 3), activation="relu"))
    net.add(layers.MaxPooling2D((2, 2)))
    net.add(layers.Conv2D(64, (3, 3), activation="relu"))
    net.add(layers.Flatten())
    net.add(layers.Dense(64, activation="relu"))
    net.add(layers.Dense(10))
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 10, n)
