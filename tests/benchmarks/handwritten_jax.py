"""A plain JAX training loop, as someone would write it by hand, for the
overhead-benchmark networks: optax optimizer and loss, a jitted train step
with donated state, the training set on the device, batches gathered by index.

``make_loop(kind, weights, x_train, y_train, scan=False, device="cpu")`` returns
``train(indices) -> losses``: one optimizer step per row of ``indices``, losses
as a host array (reading them waits for the device); parameters and data on
JAX's first ``device`` ("cpu" or "gpu"), where the jitted steps follow them.
* ``mlp``: 64-256-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1 (digits-mlp);
* ``xor``: 2-10-1 ReLU net, sigmoid binary cross-entropy, Adam (xor-mlp);
* ``tiny``: 64-10-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1, at batch 1;
* ``cnn``: digits-cnn on (8, 8, 1) images: conv 3x3 "same" 16 ReLU, max-pool 2,
  conv 3x3 "same" 32 ReLU, max-pool 2, flatten, dense 10; softmax
  cross-entropy, Adam lr 0.003 (eps 1e-7). ``lax.conv_general_dilated`` in
  NHWC/HWIO and ``lax.reduce_window``, differentiated by JAX's own rules.

``scan=True`` is the loop an expert writes for speed: the window's steps in
one jitted ``lax.scan`` (compiled once per window length) instead of one
jitted call per step.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


def make_loop(kind, weights, x_train, y_train, scan=False, device="cpu"):
    target = jax.devices(device)[0]

    def put(array, dtype=jnp.float32):
        return jax.device_put(np.asarray(array, dtype), target)

    params = [(put(layer["kernel"]), put(layer["bias"])) for layer in weights if layer]
    x = put(x_train)
    if kind == "cnn":
        y, optimizer = put(y_train, jnp.int32), optax.adam(0.003, eps=1e-7)
        loss = optax.softmax_cross_entropy_with_integer_labels
        return _loop(params, optimizer, loss, x, y, scan, _cnn_forward)
    if kind in ("mlp", "tiny"):
        y, optimizer = put(y_train, jnp.int32), optax.sgd(0.1)
        loss = optax.softmax_cross_entropy_with_integer_labels
    else:
        y, optimizer = put(np.reshape(y_train, (-1, 1))), optax.adam(1e-3, eps=1e-7)
        loss = optax.sigmoid_binary_cross_entropy
    return _loop(params, optimizer, loss, x, y, scan)


def _forward(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _cnn_forward(params, x):
    def conv(x, w, b):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         precision=jax.lax.Precision.HIGHEST)
        return jax.nn.relu(y + b)

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    (w1, b1), (w2, b2), (w3, b3) = params
    x = pool(conv(pool(conv(x, w1, b1)), w2, b2))
    return x.reshape(x.shape[0], -1) @ w3 + b3


def _loop(params, optimizer, loss, x, y, scan, forward=_forward):
    opt_state = optimizer.init(params)

    def loss_fn(params, xb, yb):
        return loss(forward(params, xb), yb).mean()

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
