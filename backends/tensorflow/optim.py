"""The TensorFlow backend's optimizers: those of :mod:`dlbench.network` written in
TF ops on ``tf.Variable`` slots (Keras's Adam puts epsilon elsewhere and its
SGD momentum has another form):

    sgd:   v <- momentum v + g;  W <- W - lr v
    adam:  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
           W <- W - lr/(1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)

(bias corrections computed in float64 from an int64 step counter, then cast
to float32, as the NumPy reference computes them in Python floats).

The module API (``docs/backends/module-api.md``): ``build_optimizer(config,
params)`` -> an object with ``update(grads)``, ``slots()`` and
``load_slots(slots, step)``, every slot a list of ``tf.Variable`` like ``params``.
"""

from __future__ import annotations

from dlbench_backends.tensorflow.core import framework

tf, _ = framework()


class SGDUpdate:
    """v <- momentum v + g;  W <- W - lr v   (v = g when momentum is 0)."""

    def __init__(self, config, variables):
        self.lr, self.momentum = config.learning_rate, config.momentum
        self.velocity = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables] \
            if self.momentum else [None] * len(variables)
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False)  # steps taken
        self.variables = variables

    def slots(self) -> dict[str, list]:
        """{canonical slot name: its variables, like ``params``} (the variables themselves)."""
        return {"velocity": self.velocity} if self.momentum else {}

    def load_slots(self, slots: dict[str, list], step: int) -> None:
        """Continue from ``slots`` (arrays shaped like ``params``) after ``step`` steps."""
        assign_slots(self.slots(), slots)
        self.t.assign(step)

    def update(self, grads) -> None:
        self.t.assign_add(1)
        for var, g, velocity in zip(self.variables, grads, self.velocity):
            if velocity is not None:
                g = velocity.assign(velocity * self.momentum + g)
            var.assign_sub(g * self.lr)


class AdamUpdate:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, config, variables):
        self.config, self.variables = config, variables
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False)

    def slots(self) -> dict[str, list]:
        return {"m": self.m, "v": self.v}

    def load_slots(self, slots: dict[str, list], step: int) -> None:
        assign_slots(self.slots(), slots)
        self.t.assign(step)

    def update(self, grads) -> None:
        c = self.config
        t = tf.cast(self.t.assign_add(1), tf.float64)

        def correction(beta):  # 1 - beta^t, in float64 like the reference's Python floats
            return 1.0 - tf.pow(tf.constant(beta, tf.float64), t)

        step_size = tf.cast(c.learning_rate / correction(c.beta_1), tf.float32)
        inv_root_correction = tf.cast(1.0 / tf.sqrt(correction(c.beta_2)), tf.float32)
        for var, g, m, v in zip(self.variables, grads, self.m, self.v):
            m = m.assign(m * c.beta_1 + g * (1.0 - c.beta_1))
            v = v.assign(v * c.beta_2 + g * g * (1.0 - c.beta_2))
            var.assign_sub(m / (tf.sqrt(v) * inv_root_correction + c.epsilon) * step_size)


def assign_slots(variables: dict[str, list], given: dict[str, list]) -> None:
    """Assign each of ``given`` to the slot variables of that name (every replica's copy under a strategy)."""
    for name, slot in variables.items():
        for variable, value in zip(slot, given[name]):
            variable.assign(tf.cast(value, tf.float32))


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate}


def build_optimizer(config, params: list):
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over the
    trained variables ``params``; ``update(grads)`` takes one step (inside the graph)."""
    return OPTIMIZERS[config.name](config, params)
