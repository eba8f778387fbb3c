"""The JAX backend's optimizers, written in ``jax.numpy`` exactly as
:mod:`dlbench.network` states them (optax's sgd/adam compute the same maths, but
the backend then needs only ``jax``), as pure functions of the parameters,
the gradients and their own state:

    sgd:  v <- momentum v + g;  W <- W - lr v
    adam: m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
          W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)

with ``1 - b^t`` evaluated as ``-expm1(t log b)`` (``log b`` taken in float64)
so that float32 keeps the accuracy NumPy's float64 scalars have
(``1 - 0.999`` in float32 is 1e-5 off).

The module API (``docs/backends/module-api.md``), in its functional form:
``build_optimizer(config)`` -> an object with ``update(grads, params, state)``
-> (params, state), ``slots(state)`` and ``load_slots(slots, step)`` -> state,
and ``init(params)``, the state before the first step; every slot a
params-shaped tree.
"""

import jax
import jax.numpy as jnp
import numpy as np


def zeros_like(params):
    """Host zeros shaped like ``params`` (initial optimizer state; separate
    buffers, since donated arguments must not share one)."""
    return [{k: np.zeros(v.shape, np.float32) for k, v in layer.items()} for layer in params]


class SGDUpdate:
    """v <- momentum v + g;  W <- W - lr v   (no state when momentum is 0)."""

    def __init__(self, config):
        self.lr, self.momentum = config.learning_rate, config.momentum

    def init(self, params):
        return zeros_like(params) if self.momentum else ()

    def update(self, grads, params, state):
        if self.momentum:
            state = jax.tree.map(lambda v, g: self.momentum * v + g, state, grads)
            grads = state
        return jax.tree.map(lambda w, d: w - d * self.lr, params, grads), state

    def slots(self, state):
        """The state as {slot name: params-shaped tree} (see TrainingState)."""
        return {"velocity": state} if self.momentum else {}

    def load_slots(self, slots, step):
        """The state holding ``slots`` after ``step`` steps (SGD keeps no count)."""
        return slots["velocity"] if self.momentum else ()


class AdamUpdate:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, config):
        self.c = config
        with np.errstate(divide="ignore"):  # log(0) = -inf gives 1 - 0^t = 1
            # in float64 first: float32(0.999) alone is 1.3e-5 off in 1 - b
            self.log_b1, self.log_b2 = np.log([config.beta_1, config.beta_2]).astype(np.float32)

    def init(self, params):
        return zeros_like(params), zeros_like(params), np.zeros((), np.int32)

    def update(self, grads, params, state):
        c, tree = self.c, jax.tree
        m, v, t = state
        t = t + 1
        tf = t.astype(jnp.float32)
        step_size = c.learning_rate / -jnp.expm1(tf * self.log_b1)
        inv_sqrt_correction = 1.0 / jnp.sqrt(-jnp.expm1(tf * self.log_b2))
        m = tree.map(lambda m, g: m * c.beta_1 + g * (1.0 - c.beta_1), m, grads)
        v = tree.map(lambda v, g: v * c.beta_2 + (g * g) * (1.0 - c.beta_2), v, grads)
        params = tree.map(lambda w, m, v: w - (m / (jnp.sqrt(v) * inv_sqrt_correction + c.epsilon)) * step_size,
                          params, m, v)
        return params, (m, v, t)

    def slots(self, state):
        return {"m": state[0], "v": state[1]}

    def load_slots(self, slots, step):
        return slots["m"], slots["v"], np.asarray(step, np.int32)


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate}


def build_optimizer(config):
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer):
    ``init(params)`` its first state, ``update(grads, params, state)`` one step
    -> (params, state), pure, for the jitted loop to carry."""
    return OPTIMIZERS[config.name](config)
