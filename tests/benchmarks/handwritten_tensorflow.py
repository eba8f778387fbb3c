"""A plain TensorFlow/Keras training loop, as a competent user would write it
by hand, for the two overhead-benchmark networks: a Keras model, a Keras
optimizer and loss, one ``@tf.function`` train step called from a Python
loop, data on the device and batches gathered by index. The harness's
TensorFlow backend must be at least as fast.

``make_loop(kind, weights, x_train, y_train)`` returns ``train(indices) -> losses``:
one optimizer step per row of ``indices``, losses as a host array.
* ``mlp``: 64-256-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1 (digits-mlp);
* ``xor``: 2-10-1 ReLU net, sigmoid binary cross-entropy, Adam (xor-mlp).
"""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def make_loop(kind, weights, x_train, y_train):
    if kind == "mlp":
        layers = [keras.layers.Dense(256, activation="relu"), keras.layers.Dense(256, activation="relu"),
                  keras.layers.Dense(10)]
        optimizer = keras.optimizers.SGD(learning_rate=0.1)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        targets = y_train.astype(np.int64)
    else:
        layers = [keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)]
        optimizer = keras.optimizers.Adam(learning_rate=0.001, epsilon=1e-7)
        loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        targets = y_train.astype(np.float32).reshape(-1, 1)
    model = keras.Sequential([keras.Input((x_train.shape[1],)), *layers])
    model.set_weights([p for layer in weights for p in (layer["kernel"], layer["bias"])])
    return _loop(model, optimizer, loss_fn, tf.constant(x_train, tf.float32), tf.constant(targets))


def _loop(model, optimizer, loss_fn, x_train, t_train):
    optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(idx):
        x, t = tf.gather(x_train, idx), tf.gather(t_train, idx)
        with tf.GradientTape() as tape:
            loss = loss_fn(t, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def train(indices):
        losses = [train_step(idx) for idx in indices]
        return tf.stack(losses).numpy()

    return train
