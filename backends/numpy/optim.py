"""The NumPy backend's optimizers, the updates of :mod:`dlbench.network` in place
on the network's flat parameter buffer ``theta`` from its gradient buffer
``grad``: a handful of vectorized operations per step whatever the number of
layers, with one scratch buffer and no allocation.

The module API (``docs/backends/module-api.md``): ``build_optimizer(config,
params)`` -> an object with ``update(grads)``, ``slots()`` and
``load_slots(slots, step)``; here ``params`` is the flat ``theta``, ``grads``
the flat gradient buffer and every slot a flat buffer laid out like ``theta``."""

from __future__ import annotations

import numpy as np


class SGDUpdate:
    """v <- momentum v + g;  W <- W - lr v   (v = g when momentum is 0)."""

    def __init__(self, config, theta: np.ndarray):
        self.lr, self.momentum = config.learning_rate, config.momentum
        self.theta = theta
        self.velocity = np.zeros_like(theta) if self.momentum else None
        self.tmp = np.empty_like(theta)
        self.t = 0

    def slots(self) -> dict[str, np.ndarray]:
        """The optimizer state, flat like ``theta``, by its canonical name (the buffers themselves)."""
        return {"velocity": self.velocity} if self.velocity is not None else {}

    def load_slots(self, slots: dict[str, np.ndarray], step: int) -> None:
        """Continue from ``slots`` (flat like ``theta``) after ``step`` steps."""
        load_flat(self.slots(), slots)
        self.t = step

    def update(self, grads: np.ndarray) -> None:
        self.t += 1
        direction = grads
        if self.velocity is not None:
            self.velocity *= self.momentum
            self.velocity += grads
            direction = self.velocity
        np.multiply(direction, self.lr, out=self.tmp)
        self.theta -= self.tmp


class AdamUpdate:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, config, theta: np.ndarray):
        self.config = config
        self.theta = theta
        self.m = np.zeros_like(theta)
        self.v = np.zeros_like(theta)
        self.tmp = np.empty_like(theta)
        self.t = 0

    def slots(self) -> dict[str, np.ndarray]:
        return {"m": self.m, "v": self.v}

    def load_slots(self, slots: dict[str, np.ndarray], step: int) -> None:
        load_flat(self.slots(), slots)
        self.t = step

    def update(self, grads: np.ndarray) -> None:
        c, g, tmp = self.config, grads, self.tmp
        self.t += 1
        self.m *= c.beta_1
        np.multiply(g, 1.0 - c.beta_1, out=tmp)
        self.m += tmp
        self.v *= c.beta_2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - c.beta_2
        self.v += tmp
        np.sqrt(self.v, out=tmp)
        tmp *= 1.0 / np.sqrt(1.0 - c.beta_2 ** self.t)
        tmp += c.epsilon
        np.divide(self.m, tmp, out=tmp)
        tmp *= c.learning_rate / (1.0 - c.beta_1 ** self.t)
        self.theta -= tmp


def load_flat(buffers: dict[str, np.ndarray], given: dict[str, np.ndarray]) -> None:
    """Copy each of ``given`` into the optimizer's buffer of that name, in place."""
    for name, buffer in buffers.items():
        buffer[...] = given[name]


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate}


def build_optimizer(config, params: np.ndarray):
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over the
    flat parameter buffer ``params``; ``update(grads)`` takes one step from the
    flat gradient buffer ``grads``."""
    return OPTIMIZERS[config.name](config, params)
