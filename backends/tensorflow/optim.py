"""The TensorFlow backend's optimizers: those of :mod:`dlbench.network.optimizers`
written in TF ops on ``tf.Variable`` slots (Keras's Adam and RMSprop put epsilon
elsewhere, its SGD momentum has another form and its ``weight_decay`` is
decoupled on every optimizer):

    sgd:      v <- momentum v + g;  W <- W - lr v  (nesterov: W <- W - lr (g + momentum v))
    adam:     m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
              W <- W - lr/(1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
    adamw:    W <- W - lr wd W, then adam
    rmsprop:  s <- rho s + (1-rho) g^2;  b <- momentum b + g / (sqrt(s [- a^2]) + eps);  W <- W - lr b
    adadelta: s <- rho s + (1-rho) g^2;  u = sqrt(x + eps)/sqrt(s + eps) g;  x <- rho x + (1-rho) u^2;
              W <- W - lr u

Before the update: clipping by global norm (torch's ``c / (||g|| + 1e-6)``), by
value, and coupled weight decay ``g + wd W``. Bias corrections and the
scheduled learning rate are computed in float64 from an int64 step counter, then
cast to float32, as the NumPy reference computes them in Python floats.

The module API (``docs/backends/module-api.md``): ``build_optimizer(config,
params)`` -> an object with ``update(grads)``, ``slots()`` and
``load_slots(slots, step)``, every slot a list of ``tf.Variable`` like ``params``.
"""

from __future__ import annotations

from dlbench.network.optimizers import CLIP_NORM_EPSILON
from dlbench_backends.tensorflow.core import framework

tf, _ = framework()


class TFOps:
    """The ops a schedule's factor needs (:mod:`dlbench.network.schedules`), on float64 scalars."""

    floor, cos = staticmethod(tf.floor), staticmethod(tf.cos)

    @staticmethod
    def minimum(x, c: float):
        return tf.minimum(x, tf.constant(c, tf.float64))

    @staticmethod
    def maximum(x, c: float):
        return tf.maximum(x, tf.constant(c, tf.float64))

    @staticmethod
    def power(base: float, x):
        return tf.pow(tf.constant(base, tf.float64), x)


TF_OPS = TFOps()


class Update:
    """The slots, the step counter ``t``, clipping, coupled weight decay and the
    scheduled learning rate every optimizer shares; ``step(grads, lr, t)`` is its own."""

    #: whether ``weight_decay`` is added to the gradient (AdamW decays the weights instead)
    coupled_decay = True

    def __init__(self, config, variables):
        self.config, self.variables = config, variables
        self.named = {name: [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
                      for name in config.slots}
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False)  # steps taken

    def slots(self) -> dict[str, list]:
        """{canonical slot name: its variables, like ``params``} (the variables themselves)."""
        return self.named

    def load_slots(self, slots: dict[str, list], step: int) -> None:
        """Continue from ``slots`` (arrays shaped like ``params``) after ``step`` steps (the schedule's too)."""
        for name, variables in self.named.items():
            for variable, value in zip(variables, slots[name]):
                variable.assign(tf.cast(value, tf.float32))
        self.t.assign(step)

    def prepared(self, grads) -> list:
        c = self.config
        if c.clip_global_norm:
            norm = tf.sqrt(tf.add_n([tf.reduce_sum(g * g) for g in grads]))
            scale = tf.minimum(c.clip_global_norm / (norm + CLIP_NORM_EPSILON), 1.0)
            grads = [g * scale for g in grads]
        if c.clip_value:
            grads = [tf.clip_by_value(g, -c.clip_value, c.clip_value) for g in grads]
        if self.coupled_decay and c.weight_decay:
            grads = [g + var * c.weight_decay for g, var in zip(grads, self.variables)]
        return grads

    def learning_rate(self, taken):
        """The learning rate after ``taken`` steps, a float64 scalar (cast where it is used)."""
        c = self.config
        if c.schedule is None:
            return tf.constant(c.learning_rate, tf.float64)
        return c.learning_rate * c.schedule.factor(tf.cast(taken, tf.float64), TF_OPS)

    def update(self, grads) -> None:
        lr = self.learning_rate(self.t.read_value())
        t = self.t.assign_add(1)
        self.step(self.prepared(grads), lr, tf.cast(t, tf.float64))


class SGDUpdate(Update):
    def step(self, grads, lr, t) -> None:
        c, lr = self.config, tf.cast(lr, tf.float32)
        velocities = self.named.get("velocity", [None] * len(grads))
        for var, g, velocity in zip(self.variables, grads, velocities):
            direction = g
            if velocity is not None:
                direction = velocity.assign(velocity * c.momentum + g)
                if c.nesterov:
                    direction = g + direction * c.momentum
            var.assign_sub(direction * lr)


class AdamUpdate(Update):
    def step(self, grads, lr, t) -> None:
        c = self.config

        def correction(beta):  # 1 - beta^t, in float64 like the reference's Python floats
            return 1.0 - tf.pow(tf.constant(beta, tf.float64), t)

        step_size = tf.cast(lr / correction(c.beta_1), tf.float32)
        lr = tf.cast(lr, tf.float32)
        inv_root_correction = tf.cast(1.0 / tf.sqrt(correction(c.beta_2)), tf.float32)
        for var, g, m, v in zip(self.variables, grads, self.named["m"], self.named["v"]):
            self.decay(var, lr)
            m = m.assign(m * c.beta_1 + g * (1.0 - c.beta_1))
            v = v.assign(v * c.beta_2 + g * g * (1.0 - c.beta_2))
            var.assign_sub(m / (tf.sqrt(v) * inv_root_correction + c.epsilon) * step_size)

    def decay(self, var, lr) -> None:
        """Adam's weight decay is in the gradient (coupled): nothing here."""


class AdamWUpdate(AdamUpdate):
    coupled_decay = False

    def decay(self, var, lr) -> None:
        """W <- W - lr wd W (decoupled), before the Adam step."""
        var.assign(var * (1.0 - lr * self.config.weight_decay))


class RMSpropUpdate(Update):
    def step(self, grads, lr, t) -> None:
        c, slots, lr = self.config, self.named, tf.cast(lr, tf.float32)
        for i, (var, g) in enumerate(zip(self.variables, grads)):
            s = slots["square_avg"][i].assign(slots["square_avg"][i] * c.rho + g * g * (1.0 - c.rho))
            if c.centered:
                a = slots["grad_avg"][i].assign(slots["grad_avg"][i] * c.rho + g * (1.0 - c.rho))
                s = s - a * a
            direction = g / (tf.sqrt(s) + c.epsilon)
            if c.momentum:
                buffer = slots["momentum_buffer"][i]
                direction = buffer.assign(buffer * c.momentum + direction)
            var.assign_sub(direction * lr)


class AdadeltaUpdate(Update):
    def step(self, grads, lr, t) -> None:
        c, lr = self.config, tf.cast(lr, tf.float32)
        for var, g, s, x in zip(self.variables, grads, self.named["square_avg"], self.named["acc_delta"]):
            s = s.assign(s * c.rho + g * g * (1.0 - c.rho))
            delta = tf.sqrt(x + c.epsilon) / tf.sqrt(s + c.epsilon) * g
            x.assign(x * c.rho + delta * delta * (1.0 - c.rho))
            var.assign_sub(delta * lr)


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate, "adamw": AdamWUpdate, "rmsprop": RMSpropUpdate,
              "adadelta": AdadeltaUpdate}


def build_optimizer(config, params: list) -> Update:
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over the
    trained variables ``params``; ``update(grads)`` takes one step (inside the graph)."""
    return OPTIMIZERS[config.name](config, params)
