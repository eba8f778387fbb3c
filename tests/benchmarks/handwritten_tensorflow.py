"""A plain TensorFlow/Keras training loop, as a competent user would write it
by hand, for the overhead-benchmark networks: a Keras model, a Keras
optimizer and loss, one ``@tf.function`` train step called from a Python
loop, data on the device and batches gathered by index. The harness's
TensorFlow backend must be at least as fast.

``make_loop(kind, weights, x_train, y_train)`` returns ``train(indices) -> losses``:
one optimizer step per row of ``indices``, losses as a host array.
* ``mlp``: 64-256-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1 (digits-mlp);
* ``xor``: 2-10-1 ReLU net, sigmoid binary cross-entropy, Adam (xor-mlp);
* ``tiny``: 64-10-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1, at batch 1.
"""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def make_loop(kind, weights, x_train, y_train):
    if kind in ("mlp", "tiny"):
        hidden = [layer["kernel"].shape[1] for layer in weights[:-1]]
        layers = [*(keras.layers.Dense(units, activation="relu") for units in hidden), keras.layers.Dense(10)]
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


class TextbookAdam:
    """Adam as torch, optax and the harness define it, in TF ops:
    ``W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``. Keras's Adam
    adds ``eps`` to ``sqrt(v)`` before the bias correction (in effect
    ``eps / sqrt(1-b2^t)``, 30x larger at step 1); where a gradient is small
    against that (an embedding row of a rare token) the two trainings part.
    The same ``build`` / ``apply_gradients`` calls as a Keras optimizer. The
    TF backend's own ``AdamUpdate`` computes the same; it is not imported, so
    that the loop the harness is timed against shares no code with it."""

    def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
        """``learning_rate``: a number or a Keras schedule of the steps taken; ``weight_decay``: decoupled,
        ``W <- W - lr*wd*W`` before the step (AdamW as torch, Keras and optax define it)."""
        self.lr, self.b1, self.b2, self.eps, self.wd = learning_rate, beta_1, beta_2, epsilon, weight_decay

    def build(self, variables):
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.t = tf.Variable(0.0, dtype=tf.float64, trainable=False)

    def apply_gradients(self, grads_and_vars):
        lr = tf.cast(self.lr(self.t), tf.float64) if callable(self.lr) else self.lr
        t = self.t.assign_add(1.0)
        step = tf.cast(lr / (1 - self.b1 ** t), tf.float32)
        root = tf.cast(tf.sqrt(1 - self.b2 ** t), tf.float32)
        for (g, var), m, v in zip(grads_and_vars, self.m, self.v):
            if self.wd:
                var.assign_sub(tf.cast(lr * self.wd, tf.float32) * var)
            m.assign(self.b1 * m + (1 - self.b1) * g)
            v.assign(self.b2 * v + (1 - self.b2) * tf.square(g))
            var.assign_sub(step * m / (tf.sqrt(v) / root + self.eps))


def _loop(model, optimizer, loss_fn, x_train, t_train, dense_gradients=False):
    """``dense_gradients``: an Embedding's gradient (tf.IndexedSlices, the batch's
    rows) made a dense tensor, so that Adam moves every row's moments as the
    harness (and torch, JAX) do; given as slices, Keras's Adam takes its sparse
    path, which on chars-lstm ends 3% away in the loss after three steps."""
    optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(idx):
        x, t = tf.gather(x_train, idx), tf.gather(t_train, idx)
        with tf.GradientTape() as tape:
            loss = loss_fn(t, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        if dense_gradients:
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def train(indices):
        losses = [train_step(idx) for idx in indices]
        return tf.stack(losses).numpy()

    return train
