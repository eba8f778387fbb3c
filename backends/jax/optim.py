"""The JAX backend's optimizers, written in ``jax.numpy`` exactly as
:mod:`dlbench.network.optimizers` states them (optax computes the same maths,
but the backend then needs only ``jax``), as pure functions of the parameters,
the gradients and their own state ``(*slots, t)``: one params-shaped tree per
slot of ``config.slots`` (in that order), then the steps taken ``t``:

    sgd:      v <- momentum v + g;  W <- W - lr v  (nesterov: W <- W - lr (g + momentum v))
    adam:     m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
              W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
    adamw:    W <- W - lr wd W, then adam
    rmsprop:  s <- rho s + (1-rho) g^2;  b <- momentum b + g / (sqrt(s [- a^2]) + eps);  W <- W - lr b
    adadelta: s <- rho s + (1-rho) g^2;  u = sqrt(x + eps)/sqrt(s + eps) g;  x <- rho x + (1-rho) u^2;
              W <- W - lr u

after clipping (global norm as torch's ``c / (||g|| + 1e-6)``, then value) and
coupled weight decay ``g + wd W``; the learning rate is the schedule's at ``t``.
``1 - b^t`` is evaluated as ``-expm1(t log b)`` (``log b`` taken in float64)
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

from dlbench.network.optimizers import CLIP_NORM_EPSILON


def zeros_like(params):
    """Host zeros shaped like ``params`` (initial optimizer state; separate
    buffers, since donated arguments must not share one)."""
    return [{k: np.zeros(v.shape, np.float32) for k, v in layer.items()} for layer in params]


class JaxOps:
    """The ops a schedule's factor needs (:mod:`dlbench.network.schedules`), in jax.numpy."""

    floor, cos = staticmethod(jnp.floor), staticmethod(jnp.cos)

    @staticmethod
    def minimum(x, c: float):
        return jnp.minimum(x, c)

    @staticmethod
    def maximum(x, c: float):
        return jnp.maximum(x, c)

    @staticmethod
    def power(base: float, x):
        return jnp.power(jnp.float32(base), x)


JAX_OPS = JaxOps()


class Update:
    """What every optimizer shares: its state ``(*slots, t)``, clipping, coupled
    weight decay and the scheduled learning rate; ``step`` is its own."""

    #: whether ``weight_decay`` is added to the gradient (AdamW decays the weights instead)
    coupled_decay = True

    def __init__(self, config):
        self.c = config

    def init(self, params):
        return (*(zeros_like(params) for _ in self.c.slots), np.zeros((), np.int32))

    def prepared(self, params, grads):
        c, tree = self.c, jax.tree
        if c.clip_global_norm:
            norm = jnp.sqrt(sum(jnp.sum(g * g) for g in tree.leaves(grads)))
            scale = jnp.minimum(c.clip_global_norm / (norm + CLIP_NORM_EPSILON), 1.0)
            grads = tree.map(lambda g: g * scale, grads)
        if c.clip_value:
            grads = tree.map(lambda g: jnp.clip(g, -c.clip_value, c.clip_value), grads)
        if self.coupled_decay and c.weight_decay:
            grads = tree.map(lambda g, w: g + w * c.weight_decay, grads, params)
        return grads

    def learning_rate(self, taken):
        c = self.c
        return c.learning_rate if c.schedule is None else \
            c.learning_rate * c.schedule.factor(taken.astype(jnp.float32), JAX_OPS)

    def update(self, grads, params, state):
        """One step from ``grads`` -> (params, state)."""
        *slots, t = state
        lr = self.learning_rate(t)
        params, slots = self.step(params, self.prepared(params, grads), dict(zip(self.c.slots, slots)), lr, t + 1)
        return params, (*(slots[name] for name in self.c.slots), t + 1)

    def slots(self, state):
        """The state as {slot name: params-shaped tree} (see TrainingState)."""
        return dict(zip(self.c.slots, state[:-1]))

    def load_slots(self, slots, step):
        """The state holding ``slots`` after ``step`` steps (the schedule's and Adam's count)."""
        return (*(slots[name] for name in self.c.slots), np.asarray(step, np.int32))


class SGDUpdate(Update):
    def step(self, params, grads, slots, lr, t):
        c, tree = self.c, jax.tree
        if c.momentum:
            slots["velocity"] = tree.map(lambda v, g: c.momentum * v + g, slots["velocity"], grads)
            grads = tree.map(lambda v, g: g + c.momentum * v, slots["velocity"], grads) if c.nesterov \
                else slots["velocity"]
        return tree.map(lambda w, d: w - d * lr, params, grads), slots


class AdamUpdate(Update):
    def __init__(self, config):
        super().__init__(config)
        with np.errstate(divide="ignore"):  # log(0) = -inf gives 1 - 0^t = 1
            # in float64 first: float32(0.999) alone is 1.3e-5 off in 1 - b
            self.log_b1, self.log_b2 = np.log([config.beta_1, config.beta_2]).astype(np.float32)

    def decay(self, params, lr):
        """Adam's weight decay is in the gradient (coupled): the weights as they are."""
        return params

    def step(self, params, grads, slots, lr, t):
        c, tree = self.c, jax.tree
        tf = t.astype(jnp.float32)
        step_size = lr / -jnp.expm1(tf * self.log_b1)
        inv_sqrt_correction = 1.0 / jnp.sqrt(-jnp.expm1(tf * self.log_b2))
        m = tree.map(lambda m, g: m * c.beta_1 + g * (1.0 - c.beta_1), slots["m"], grads)
        v = tree.map(lambda v, g: v * c.beta_2 + (g * g) * (1.0 - c.beta_2), slots["v"], grads)
        params = tree.map(lambda w, m, v: w - (m / (jnp.sqrt(v) * inv_sqrt_correction + c.epsilon)) * step_size,
                          self.decay(params, lr), m, v)
        return params, {"m": m, "v": v}


class AdamWUpdate(AdamUpdate):
    coupled_decay = False

    def decay(self, params, lr):
        """W <- W - lr wd W (decoupled), before the Adam step."""
        return jax.tree.map(lambda w: w * (1.0 - lr * self.c.weight_decay), params)


class RMSpropUpdate(Update):
    def step(self, params, grads, slots, lr, t):
        c, tree = self.c, jax.tree
        s = slots["square_avg"] = tree.map(lambda s, g: s * c.rho + (g * g) * (1.0 - c.rho), slots["square_avg"],
                                           grads)
        if c.centered:
            a = slots["grad_avg"] = tree.map(lambda a, g: a * c.rho + g * (1.0 - c.rho), slots["grad_avg"], grads)
            s = tree.map(lambda s, a: s - a * a, s, a)
        direction = tree.map(lambda g, s: g / (jnp.sqrt(s) + c.epsilon), grads, s)
        if c.momentum:
            direction = slots["momentum_buffer"] = tree.map(lambda b, d: b * c.momentum + d,
                                                            slots["momentum_buffer"], direction)
        return tree.map(lambda w, d: w - d * lr, params, direction), slots


class AdadeltaUpdate(Update):
    def step(self, params, grads, slots, lr, t):
        c, tree = self.c, jax.tree
        s = tree.map(lambda s, g: s * c.rho + (g * g) * (1.0 - c.rho), slots["square_avg"], grads)
        delta = tree.map(lambda x, s, g: jnp.sqrt(x + c.epsilon) / jnp.sqrt(s + c.epsilon) * g,
                         slots["acc_delta"], s, grads)
        x = tree.map(lambda x, u: x * c.rho + (u * u) * (1.0 - c.rho), slots["acc_delta"], delta)
        return tree.map(lambda w, u: w - u * lr, params, delta), {"square_avg": s, "acc_delta": x}


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate, "adamw": AdamWUpdate, "rmsprop": RMSpropUpdate,
              "adadelta": AdadeltaUpdate}


def build_optimizer(config):
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer):
    ``init(params)`` its first state, ``update(grads, params, state)`` one step
    -> (params, state), pure, for the jitted loop to carry."""
    return OPTIMIZERS[config.name](config)
