"""The JAX backend's losses, from the logits ``z`` (``output`` is the final
activation ``f``), each the batch mean:

    categorical_crossentropy: mean(logsumexp(z) - z[y])
    binary_crossentropy:      mean(max(z, 0) - z t + log(1 + exp(-|z|)))
    mse:                      mean((f(z) - t)^2)
"""

import jax
import jax.numpy as jnp


def categorical_crossentropy(z, labels, output):
    """mean(log(sum(exp(z - max z))) - (z - max z)[label]), shifted before the
    subtraction as every backend computes it. ``logsumexp(z) - z[label]`` adds
    the maximum back first and rounds a small loss to the maximum's ulp: late
    in mnist1d-cnn (loss 2.6e-4, logits ~15) that was 3.7e-4 of the loss, a
    hundred times the reference's own rounding. The gradient is the same."""
    log_p = jax.nn.log_softmax(z, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0])  # over every token


def binary_crossentropy(z, targets, output):
    return jnp.mean(jnp.maximum(z, 0) - z * targets + jnp.log1p(jnp.exp(-jnp.abs(z))))


def mse(z, targets, output):
    return jnp.mean(jnp.square(output(z) - targets))


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}
