"""The NumPy backend's optimizers, the updates of :mod:`dlbench.network` in place
on the network's flat parameter buffer ``theta`` from its gradient buffer
``grad``: a handful of vectorized operations per step whatever the number of
layers, with one scratch buffer and no allocation."""

from __future__ import annotations

import numpy as np


class SGDUpdate:
    """v <- momentum v + g;  W <- W - lr v   (v = g when momentum is 0)."""

    def __init__(self, config, theta: np.ndarray, grad: np.ndarray):
        self.lr, self.momentum = config.learning_rate, config.momentum
        self.theta, self.grad = theta, grad
        self.velocity = np.zeros_like(theta) if self.momentum else None
        self.tmp = np.empty_like(theta)
        self.t = 0

    @property
    def slots(self) -> dict[str, np.ndarray]:
        """The optimizer state, flat like ``theta``, by its canonical name."""
        return {"velocity": self.velocity} if self.velocity is not None else {}

    def update(self) -> None:
        self.t += 1
        direction = self.grad
        if self.velocity is not None:
            self.velocity *= self.momentum
            self.velocity += self.grad
            direction = self.velocity
        np.multiply(direction, self.lr, out=self.tmp)
        self.theta -= self.tmp


class AdamUpdate:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, config, theta: np.ndarray, grad: np.ndarray):
        self.config = config
        self.theta, self.grad = theta, grad
        self.m = np.zeros_like(theta)
        self.v = np.zeros_like(theta)
        self.tmp = np.empty_like(theta)
        self.t = 0

    @property
    def slots(self) -> dict[str, np.ndarray]:
        return {"m": self.m, "v": self.v}

    def update(self) -> None:
        c, g, tmp = self.config, self.grad, self.tmp
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


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate}


def build_optimizer(config, theta: np.ndarray, grad: np.ndarray):
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over the
    flat buffers; ``update()`` takes one step from what ``grad`` holds."""
    return OPTIMIZERS[config.name](config, theta, grad)
