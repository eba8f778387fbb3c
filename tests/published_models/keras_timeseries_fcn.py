"""The fully convolutional time-series classifier of keras-io ("Timeseries classification from
scratch", FordA): three Conv1D / BatchNormalization / ReLU blocks and global average pooling.

Source: https://github.com/keras-team/keras-io, examples/timeseries/timeseries_classification_from_scratch.py
(``make_model``, compiled with ``optimizer="adam"`` and ``loss="sparse_categorical_crossentropy"``;
FordA samples are 500 steps of one value, two classes).
"""

import keras
import numpy as np

FRAMEWORK = "keras"
INPUT_SHAPE = (500, 1)
OUTPUT = "softmax"


def make_model(input_shape, num_classes=2):
    input_layer = keras.layers.Input(input_shape)
    conv1 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(input_layer)
    conv1 = keras.layers.BatchNormalization()(conv1)
    conv1 = keras.layers.ReLU()(conv1)
    conv2 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(conv1)
    conv2 = keras.layers.BatchNormalization()(conv2)
    conv2 = keras.layers.ReLU()(conv2)
    conv3 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(conv2)
    conv3 = keras.layers.BatchNormalization()(conv3)
    conv3 = keras.layers.ReLU()(conv3)
    gap = keras.layers.GlobalAveragePooling1D()(conv3)
    output_layer = keras.layers.Dense(num_classes, activation="softmax")(gap)
    return keras.models.Model(inputs=input_layer, outputs=output_layer)


def model():
    net = make_model(INPUT_SHAPE)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 2, n)
