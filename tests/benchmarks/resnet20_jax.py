"""A plain JAX training loop of ResNet-20: parameters and BatchNorm moving
statistics as two pytrees, ``lax.conv_general_dilated`` in NHWC/HWIO with
symmetric padding, BatchNorm over the batch in training (biased variance, the
moving statistics updated as the step's second output), optax's
``add_decayed_weights`` (coupled L2, torch's) chained before its SGD with
momentum at a ``cosine_decay_schedule`` where the scenario has one, one jitted step per batch with donated state.
``make_loop(weights, x_train, y_train, scenario)`` returns ``train(indices) -> losses``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from resnet20_weights import batchnorm_settings, parts, sgd_recipe


def _conv(x, kernel, stride: int):
    pad = kernel.shape[0] // 2
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=jax.lax.Precision.HIGHEST)


def _split(weights):
    """(trained {gamma, beta, kernels...}, moving statistics) pytrees of the network."""
    p = parts(weights)

    def norm(w):
        return {"gamma": w[0], "beta": w[1]}, {"mean": w[2], "variance": w[3]}

    def block(w):
        (n1, s1), (n2, s2) = norm(w["norm1"]), norm(w["norm2"])
        params, stats = {"conv1": w["conv1"], "norm1": n1, "conv2": w["conv2"], "norm2": n2}, {"norm1": s1,
                                                                                              "norm2": s2}
        if w["shortcut"] is not None:
            params["shortcut"], (params["shortcut_norm"], stats["shortcut_norm"]) = w["shortcut"][0], \
                norm(w["shortcut"][1])
        return params, stats

    stem_norm, stem_stats = norm(p["stem"][1])
    blocks = [block(w) for w in p["blocks"]]
    params = {"stem": p["stem"][0], "stem_norm": stem_norm, "blocks": [b[0] for b in blocks],
              "classifier": p["classifier"]}
    return params, {"stem_norm": stem_stats, "blocks": [b[1] for b in blocks]}


def _forward(settings):
    momentum, epsilon = settings

    def norm(x, p, stats):
        mean, variance = x.mean(axis=(0, 1, 2)), jnp.square(x - x.mean(axis=(0, 1, 2))).mean(axis=(0, 1, 2))
        y = (x - mean) * jax.lax.rsqrt(variance + epsilon) * p["gamma"] + p["beta"]
        return y, {"mean": momentum * stats["mean"] + (1 - momentum) * mean,
                   "variance": momentum * stats["variance"] + (1 - momentum) * variance}

    def block(x, p, stats):
        stride, new, shortcut = 2 if "shortcut" in p else 1, {}, x
        if "shortcut" in p:
            shortcut, new["shortcut_norm"] = norm(_conv(x, p["shortcut"], 2), p["shortcut_norm"],
                                                  stats["shortcut_norm"])
        h, new["norm1"] = norm(_conv(x, p["conv1"], stride), p["norm1"], stats["norm1"])
        h, new["norm2"] = norm(_conv(jax.nn.relu(h), p["conv2"], 1), p["norm2"], stats["norm2"])
        return jax.nn.relu(h + shortcut), new

    def forward(params, stats, x):
        x, stem = norm(_conv(x, params["stem"], 1), params["stem_norm"], stats["stem_norm"])
        x, blocks = jax.nn.relu(x), []
        for p, s in zip(params["blocks"], stats["blocks"]):
            x, new = block(x, p, s)
            blocks.append(new)
        w, b = params["classifier"]
        return x.mean(axis=(1, 2)) @ w + b, {"stem_norm": stem, "blocks": blocks}

    return forward


def make_loop(weights, x_train, y_train, scenario):
    params, stats = jax.tree_util.tree_map(jnp.asarray, _split(weights))
    forward = _forward(batchnorm_settings(scenario))
    sgd = sgd_recipe(scenario)
    learning_rate = sgd["learning_rate"]
    if sgd["decay_steps"]:
        learning_rate = optax.cosine_decay_schedule(learning_rate, sgd["decay_steps"], sgd["alpha"])
    optimizer = optax.chain(optax.add_decayed_weights(sgd["weight_decay"]),
                            optax.sgd(learning_rate, momentum=sgd["momentum"]))
    opt_state = optimizer.init(params)
    x, y = jnp.asarray(x_train, jnp.float32), jnp.asarray(y_train, jnp.int32)

    def loss_fn(params, stats, xb, yb):
        logits, stats = forward(params, stats, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), stats

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, stats, opt_state, x, y, idx):
        (value, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x[idx], y[idx])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, value

    def train(indices):
        nonlocal params, stats, opt_state
        losses = []
        for idx in indices:
            params, stats, opt_state, value = step(params, stats, opt_state, x, y, idx)
            losses.append(value)
        return np.asarray(jax.device_get(losses))

    return train
