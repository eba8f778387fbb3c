"""The JAX backend's losses, from the logits ``z`` (``output`` is the final
activation ``f``), each the batch mean (:mod:`dlbench.network.loss`'s conventions):

    categorical_crossentropy: mean(logsumexp(z) - (1 - eps) z[y] - eps mean(z))
    binary_crossentropy:      mean(max(z, 0) - z t + log(1 + exp(-|z|)))
    mse:                      mean((f(z) - t)^2)
    mae:                      mean(|f(z) - t|), gradient sign(f(z) - t) with sign(0) = 0
    huber:                    mean(0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta))
"""

import functools

import jax
import jax.numpy as jnp


def categorical_crossentropy(z, labels, output, label_smoothing: float = 0.0):
    """mean(log(sum(exp(z - max z))) - (z - max z)[label]), shifted before the
    subtraction as every backend computes it. ``logsumexp(z) - z[label]`` adds
    the maximum back first and rounds a small loss to the maximum's ulp: late
    in mnist1d-cnn (loss 2.6e-4, logits ~15) that was 3.7e-4 of the loss, a
    hundred times the reference's own rounding. The gradient is the same."""
    log_p = jax.nn.log_softmax(z, axis=-1)
    picked = jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    if not label_smoothing:
        return -jnp.mean(picked)  # over every token
    return -jnp.mean((1.0 - label_smoothing) * picked + label_smoothing * jnp.mean(log_p, axis=-1))


def binary_crossentropy(z, targets, output):
    return jnp.mean(jnp.maximum(z, 0) - z * targets + jnp.log1p(jnp.exp(-jnp.abs(z))))


def mse(z, targets, output):
    return jnp.mean(jnp.square(output(z) - targets))


def mae(z, targets, output):
    """|r| written as sign(r) r: the same value, and the gradient sign(r), 0 at r = 0 as
    torch's and TensorFlow's (jnp.abs's gradient at 0 is 1)."""
    r = output(z) - targets
    return jnp.mean(jnp.sign(r) * r)


def huber(z, targets, output, delta: float = 1.0):
    r = output(z) - targets
    size = jnp.abs(r)
    return jnp.mean(jnp.where(size <= delta, 0.5 * r * r, delta * (size - 0.5 * delta)))


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse, mae, huber)}


def bound_loss(spec):
    """The spec's loss with its options (huber's delta, label smoothing) bound."""
    return functools.partial(LOSSES[spec.loss], **spec.loss_kwargs)
