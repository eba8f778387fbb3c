"""The JAX backend's losses, from the logits ``z`` (``output`` is the final
activation ``f``), each the batch mean:

    categorical_crossentropy: mean(logsumexp(z) - z[y])
    binary_crossentropy:      mean(max(z, 0) - z t + log(1 + exp(-|z|)))
    mse:                      mean((f(z) - t)^2)
"""

import jax
import jax.numpy as jnp


def categorical_crossentropy(z, labels, output):
    picked = jnp.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(z, axis=-1) - picked)


def binary_crossentropy(z, targets, output):
    return jnp.mean(jnp.maximum(z, 0) - z * targets + jnp.log1p(jnp.exp(-jnp.abs(z))))


def mse(z, targets, output):
    return jnp.mean(jnp.square(output(z) - targets))


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}
