"""How the JAX backend's matmuls and convolutions compute, per precision
(:mod:`dlbench.network.precision`). JAX has no autocast: a mixed precision is an
explicit cast of each operand, the jmp-style policy (parameters float32,
compute dtype bf16/fp16 for the products, output float32), in one place that
every layer builder calls.

* fp32: float32 operands at ``lax.Precision.HIGHEST`` (true fp32 on GPUs too);
* tf32: XLA's ``DEFAULT`` precision (TF32 tensor cores on Ampere and later);
* bf16, fp16: both operands cast to bfloat16/float16, the product accumulated
  and returned in float32 (``preferred_element_type``), so that the bias,
  the activations, pooling, normalization, softmax, the loss and the update
  all stay float32, exactly the NumPy reference's policy. In attention the
  query, key and value are cast: ``jax.nn.dot_product_attention`` then takes
  its logits in float32, its softmax in float32, and the probabilities back
  to the compute dtype for their product with the value.

fp16's dynamic loss scaling (:class:`LossScaler`, :func:`initial_scaler`) is
part of the jitted step (:mod:`~dlbench_backends.jax.trainer`), on the core's
schedule (:data:`dlbench.network.precision.LOSS_SCALE`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlbench.network.precision import LOSS_SCALE, compute_dtype, scales_loss


def attention_unavailable(device: str, dtype: str) -> str | None:
    """Why XLA on ``device`` cannot run ``jax.nn.dot_product_attention`` (and its
    gradient) on ``dtype`` queries, keys and values; None when it can."""
    def loss(q):
        return jax.nn.dot_product_attention(q, q, q, implementation="xla").astype(jnp.float32).sum()

    try:
        with jax.default_device(jax.devices(device)[0]):
            jax.jit(jax.grad(loss))(jnp.ones((1, 2, 1, 2), dtype))
    except Exception as exc:  # XLA reports it as a ValueError or an XlaRuntimeError
        first = str(exc).splitlines()[0]
        return f"XLA on {device} cannot run attention in {dtype} ({first})"
    return None


class Policy:
    """``dot`` and ``conv`` for one precision; ``cast`` gives an operand the compute dtype."""

    def __init__(self, precision: str):
        self.name = precision
        self.lax = lax.Precision.DEFAULT if precision == "tf32" else lax.Precision.HIGHEST
        dtype = compute_dtype(precision)
        self.compute = None if dtype is None else jnp.dtype(dtype)

    def cast(self, x):
        return x if self.compute is None else x.astype(self.compute)

    def dot(self, a, b):
        return jnp.dot(self.cast(a), self.cast(b), precision=self.lax, preferred_element_type=jnp.float32)

    def conv(self, lhs, rhs, window_strides, padding, **kwargs):
        return lax.conv_general_dilated(self.cast(lhs), self.cast(rhs), window_strides, padding, precision=self.lax,
                                        preferred_element_type=jnp.float32, **kwargs)


def next_scale(scale, good_steps, skipped, finite):
    """:meth:`dlbench.network.precision.LossScaleSchedule.next` in jax.numpy, counting skipped steps."""
    s = LOSS_SCALE
    good = good_steps + 1
    grow = finite & (good == s.growth_interval)
    new_scale = jnp.where(finite, jnp.where(grow, scale * s.growth_factor, scale), scale * s.backoff_factor)
    return new_scale, jnp.where(finite & ~grow, good, 0), skipped + jnp.where(finite, 0, 1)


class LossScaler:
    """fp16's dynamic loss scaling inside the jitted step: the module API's loss
    scaler (``docs/backends/module-api.md``) in its functional form. What a
    stateful scaler keeps is the carry's ``carried`` value, (scale, finite
    steps in a row, skipped steps), passed last and returned new:
    ``scale(loss, carried)``, ``unscale(grads, carried)`` -> (grads, overflow),
    ``update(overflow, carried)`` -> carried, ``state(carried)`` -> (scale,
    finite steps in a row), ``load(state)`` -> carried."""

    def scale(self, loss, carried):
        return loss * carried[0]

    def unscale(self, grads, carried):
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        return jax.tree.map(lambda g: g * (1.0 / carried[0]), grads), ~finite

    def update(self, overflow, carried):
        return next_scale(*carried, ~overflow)

    def state(self, carried) -> tuple[float, int]:
        return float(carried[0]), int(carried[1])

    def load(self, state: tuple[float, int]):
        """The carried value continuing from ``state`` (no step skipped yet)."""
        return np.float32(state[0]), np.int32(state[1]), np.int32(0)


def initial_scaler(precision: str):
    """The carry's loss-scale value at the start, or () without scaling."""
    return LossScaler().load(LOSS_SCALE.start()) if scales_loss(precision) else ()
