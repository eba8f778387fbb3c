"""Plain hand-written predict loops, one per framework, as a user would write
them to serve the overhead benchmark's networks (``overhead.NETWORKS``: the
64-256-256-10 and 64-10-10 ReLU MLPs and the 2-10-1 XOR net): the test set already on the
device, the batch gathered by index, the logits read back to the host.
``dlbench``'s ``Trainer.predict`` must be as fast (``overhead_inference.py``).

``make_predict(backend, weights, x_test)`` returns ``predict(rows) -> logits``
(a host array) for canonical Dense weights (``kernel`` (in, out), ``bias``).
"""

import os

import numpy as np


def _dense_layers(weights):
    return [(layer["kernel"], layer["bias"]) for layer in weights if layer]


def numpy_predict(weights, x_test):
    layers = [(w.copy(), b.copy()) for w, b in _dense_layers(weights)]
    last = len(layers) - 1

    def predict(rows):
        h = x_test[rows]
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < last:
                np.maximum(h, 0, out=h)
        return h

    return predict


def torch_predict(weights, x_test):
    import torch
    from torch import nn

    modules = []
    for i, (w, b) in enumerate(_dense_layers(weights)):
        linear = nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T))
            linear.bias.copy_(torch.from_numpy(b))
        modules += [linear, nn.ReLU()]
    model = nn.Sequential(*modules[:-1]).eval()
    x = torch.tensor(x_test, dtype=torch.float32)

    def predict(rows):
        with torch.inference_mode():
            return model(x[torch.from_numpy(rows)]).numpy()

    return predict


def tensorflow_predict(weights, x_test):
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import tensorflow as tf

    layers = _dense_layers(weights)
    model = keras.Sequential([keras.Input((x_test.shape[1],)),
                              *[keras.layers.Dense(w.shape[1], activation="relu" if i < len(layers) - 1 else None)
                                for i, (w, _) in enumerate(layers)]])
    model.set_weights([p for pair in layers for p in pair])
    x = tf.constant(x_test, tf.float32)

    @tf.function
    def logits(rows):
        return model(tf.gather(x, rows), training=False)

    def predict(rows):
        return logits(rows).numpy()

    return predict


def jax_predict(weights, x_test):
    import jax
    import jax.numpy as jnp

    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in _dense_layers(weights)]
    x = jnp.asarray(x_test, jnp.float32)

    @jax.jit
    def logits(params, x, rows):
        h = x[rows]
        for w, b in params[:-1]:
            h = jax.nn.relu(jnp.dot(h, w, precision=jax.lax.Precision.HIGHEST) + b)
        w, b = params[-1]
        return jnp.dot(h, w, precision=jax.lax.Precision.HIGHEST) + b

    def predict(rows):
        return np.asarray(logits(params, x, rows))

    return predict


def make_predict(backend, weights, x_test):
    return {"numpy": numpy_predict, "torch": torch_predict, "tensorflow": tensorflow_predict,
            "jax": jax_predict}[backend](weights, np.ascontiguousarray(x_test, np.float32))
