"""A plain JAX training loop, as someone would write it by hand, for the two
overhead-benchmark networks: optax optimizer and loss, a jitted train step
with donated state, the training set on the device, batches gathered by index.

``make_loop(kind, weights, x_train, y_train)`` returns ``train(indices) -> losses``:
one optimizer step per row of ``indices``, losses as a host array.
* ``mlp``: 64-256-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1 (digits-mlp);
* ``xor``: 2-10-1 ReLU net, sigmoid binary cross-entropy, Adam (xor-mlp).

``scan=True`` is the loop an expert writes for speed: the window's steps in
one jitted ``lax.scan`` (compiled once per window length) instead of one
jitted call per step.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


def make_loop(kind, weights, x_train, y_train, scan=False):
    params = [(jnp.array(layer["kernel"]), jnp.array(layer["bias"])) for layer in weights]
    x = jnp.asarray(x_train, jnp.float32)
    if kind == "mlp":
        y, optimizer = jnp.asarray(y_train, jnp.int32), optax.sgd(0.1)
        loss = optax.softmax_cross_entropy_with_integer_labels
    else:
        y, optimizer = jnp.asarray(y_train, jnp.float32).reshape(-1, 1), optax.adam(1e-3, eps=1e-7)
        loss = optax.sigmoid_binary_cross_entropy
    return _loop(params, optimizer, loss, x, y, scan)


def _forward(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _loop(params, optimizer, loss, x, y, scan):
    opt_state = optimizer.init(params)

    def loss_fn(params, xb, yb):
        return loss(_forward(params, xb), yb).mean()

    def step(params, opt_state, x, y, idx):
        value, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    train_step = jax.jit(step, donate_argnums=(0, 1))

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_window(params, opt_state, x, y, indices):
        def body(carry, idx):
            params, opt_state, value = step(*carry, x, y, idx)
            return (params, opt_state), value
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), indices)
        return params, opt_state, losses

    def train(indices):
        nonlocal params, opt_state
        if scan:
            params, opt_state, losses = train_window(params, opt_state, x, y, indices)
            return np.asarray(losses)
        losses = []
        for idx in indices:
            params, opt_state, value = train_step(params, opt_state, x, y, idx)
            losses.append(value)
        return np.asarray(jax.device_get(losses))

    return train
