"""The small Xception-like network of keras-io ("Image classification from scratch", cats vs dogs).

Source: https://github.com/keras-team/keras-io, examples/vision/image_classification_from_scratch.py
(``make_model(input_shape=image_size + (3,), num_classes=2)``, ``image_size = (180, 180)``, compiled
with ``Adam(1e-3)`` and ``loss="binary_crossentropy"``). Refused, all 18 parts in one error: the
Rescaling layer, the nine SeparableConv2D layers, the four "same"-padded max pools, and the four
shortcuts that are a strided 1x1 Conv2D projection (a branch, not x + f(x)).
"""

import keras
import numpy as np
from keras import layers

FRAMEWORK = "keras"
INPUT_SHAPE = (180, 180, 3)
OUTPUT = "sigmoid"
PARTS = 18  # parts the one error lists
REFUSED = ["'rescaling', Rescaling): Rescaling layers cannot be read", "SeparableConv2D layers cannot be read",
           "padding='same' (dlbench pools do not pad)", "the graph branches"]


def make_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(64, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for size in [128, 256, 512, 728]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(units, activation=activation)(x)
    return keras.Model(inputs, outputs)


def model():
    net = make_model(input_shape=INPUT_SHAPE, num_classes=2)
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return net


def batch(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 2, n)
