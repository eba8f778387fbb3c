"""A plain Keras-on-TensorFlow training loop of ResNet-20: a functional model
as Keras's own ResNet builds its blocks (``ZeroPadding2D(1)`` then a valid
``Conv2D`` without bias, so a strided conv pads both sides as torch does;
``BatchNormalization``; ``Add``; a 1x1 strided ``Conv2D`` + ``BatchNormalization``
on the shortcut branch where the shape changes), ``GlobalAveragePooling2D``,
``Dense``, ``keras.optimizers.SGD(momentum)`` at a constant learning rate (with
weight decay or a schedule, ``TorchSGD``: Keras's SGD differs from the spec's
there, see it) and one ``@tf.function`` step per batch (``handwritten_tensorflow``'s
loop). ``make_loop(weights, x_train, y_train, scenario)`` returns ``train(indices) -> losses``."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from handwritten_tensorflow import _loop  # noqa: E402
from resnet20_weights import batchnorm_settings, parts, sgd_recipe  # noqa: E402


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


class TorchSGD:
    """SGD as torch and the spec define it, in TF ops: ``g <- g + wd*W`` (coupled L2),
    ``v <- momentum*v + g``, ``W <- W - lr_t*v``, ``lr_t`` a Keras schedule of the steps
    taken. Keras's ``SGD`` keeps ``lr`` inside its velocity (``m <- momentum*m - lr*g``),
    the same at a constant learning rate and not under a schedule, and its
    ``weight_decay`` is decoupled; the same ``build`` / ``apply_gradients`` calls."""

    def __init__(self, learning_rate, momentum: float, weight_decay: float):
        self.learning_rate, self.momentum, self.weight_decay = learning_rate, momentum, weight_decay

    def build(self, variables):
        self.v = [tf.Variable(tf.zeros_like(w), trainable=False) for w in variables]
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False)

    def apply_gradients(self, grads_and_vars):
        lr = self.learning_rate(self.t) if callable(self.learning_rate) else self.learning_rate
        self.t.assign_add(1)
        for (g, w), v in zip(grads_and_vars, self.v):
            if self.weight_decay:
                g = g + self.weight_decay * w
            w.assign_sub(lr * v.assign(self.momentum * v + g))


def _sgd(sgd: dict):
    """Keras's own SGD where it computes the spec's (a constant learning rate, no weight decay), else TorchSGD."""
    if not sgd["decay_steps"] and not sgd["weight_decay"]:
        return keras.optimizers.SGD(learning_rate=sgd["learning_rate"], momentum=sgd["momentum"])
    learning_rate = sgd["learning_rate"]
    if sgd["decay_steps"]:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, sgd["decay_steps"], sgd["alpha"])
    return TorchSGD(learning_rate, sgd["momentum"], sgd["weight_decay"])


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
    return _loop(model, _sgd(sgd_recipe(scenario)),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 tf.constant(x_train, tf.float32), tf.constant(y_train.astype("int64")))
