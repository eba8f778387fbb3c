"""A plain Keras-on-TensorFlow training loop of ResNet-20: a functional model
as Keras's own ResNet builds its blocks (``ZeroPadding2D(1)`` then a valid
``Conv2D`` without bias, so a strided conv pads both sides as torch does;
``BatchNormalization``; ``Add``; a 1x1 strided ``Conv2D`` + ``BatchNormalization``
on the shortcut branch where the shape changes), ``GlobalAveragePooling2D``,
``Dense``, ``keras.optimizers.SGD(momentum)`` and one ``@tf.function`` step per
batch (``handwritten_tensorflow``'s loop). ``make_loop(weights, x_train, y_train,
scenario)`` returns ``train(indices) -> losses``."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from handwritten_tensorflow import _loop  # noqa: E402
from resnet20_weights import batchnorm_settings, parts  # noqa: E402


def _conv(x, kernel, stride: int):
    if kernel.shape[0] > 1:
        x = keras.layers.ZeroPadding2D(kernel.shape[0] // 2)(x)
    layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[0], strides=stride, use_bias=False)
    y = layer(x)
    layer.set_weights([kernel])
    return y


def _norm(x, weights, settings):
    momentum, epsilon = settings
    layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
    y = layer(x)
    layer.set_weights(list(weights))
    return y


def _block(x, w, settings):
    shortcut = x
    if w["shortcut"] is not None:
        kernel, norm = w["shortcut"]
        shortcut = _norm(_conv(x, kernel, w["stride"]), norm, settings)
    h = keras.layers.ReLU()(_norm(_conv(x, w["conv1"], w["stride"]), w["norm1"], settings))
    h = _norm(_conv(h, w["conv2"], 1), w["norm2"], settings)
    return keras.layers.ReLU()(keras.layers.Add()([shortcut, h]))


def make_loop(weights, x_train, y_train, scenario):
    settings = batchnorm_settings(scenario)
    p = parts(weights)
    inputs = keras.Input(x_train.shape[1:])
    x = keras.layers.ReLU()(_norm(_conv(inputs, p["stem"][0], 1), p["stem"][1], settings))
    for block in p["blocks"]:
        x = _block(x, block, settings)
    x = keras.layers.GlobalAveragePooling2D()(x)
    classifier = keras.layers.Dense(p["classifier"][0].shape[1])
    model = keras.Model(inputs, classifier(x))
    classifier.set_weights(list(p["classifier"]))
    sgd = scenario.model.optimizer
    return _loop(model, keras.optimizers.SGD(learning_rate=sgd.learning_rate, momentum=sgd.momentum),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 tf.constant(x_train, tf.float32), tf.constant(y_train.astype("int64")))
