"""The NumPy backend's optimizers, the updates of :mod:`dlbench.network.optimizers`
in place on the network's flat parameter buffer ``theta`` from its gradient
buffer ``grads``: a handful of vectorized operations per step whatever the
number of layers, with scratch buffers allocated once.

Clipping and coupled weight decay (:func:`prepared_gradient`) make the
gradient the update reads, in a buffer of their own (``grads`` stays what
backpropagation wrote); the learning rate of each step is the schedule's at the
steps taken so far (``t`` before the step), in Python floats (float64).

The module API (``docs/backends/module-api.md``): ``build_optimizer(config,
params)`` -> an object with ``update(grads)``, ``slots()`` and
``load_slots(slots, step)``; here ``params`` is the flat ``theta``, ``grads``
the flat gradient buffer and every slot a flat buffer laid out like ``theta``."""

from __future__ import annotations

import functools
import math

import numpy as np

from dlbench.network.optimizers import CLIP_NORM_EPSILON


class Update:
    """What every optimizer shares: the buffers, the step count ``t``, the scheduled
    learning rate and the gradient after clipping and coupled weight decay;
    ``step(lr, grads)``, each optimizer's own, counts the step and updates."""

    #: whether ``weight_decay`` is added to the gradient (AdamW decays the weights instead)
    coupled_decay = True

    def __init__(self, config, theta: np.ndarray):
        self.config, self.theta = config, theta
        self.tmp = np.empty_like(theta)
        #: whether the gradient is clipped or decayed before the update (into ``work``)
        self.prepares = bool(config.clip_global_norm or config.clip_value
                             or (self.coupled_decay and config.weight_decay))
        self.work = np.empty_like(theta) if self.prepares else None
        self.t = 0
        if config.schedule is None and not self.prepares:
            # the plain step: update(grads) is step(lr, grads) at the constant rate, no call between
            # (at batch 1 a step's time is its Python calls; a positional partial adds ~40 ns, a keyword one ~150)
            self.update = functools.partial(self.step, float(config.learning_rate))

    def learning_rate(self) -> float:
        """The learning rate of the step about to be taken (``t`` steps taken)."""
        return float(self.config.learning_rate_at(self.t))

    def prepared_gradient(self, grads: np.ndarray) -> np.ndarray:
        """``grads`` clipped by global norm, then by value, plus ``weight_decay * theta``
        (in that order, as torch's clip_grad_norm_ then its optimizers' step)."""
        c, g = self.config, grads
        if c.clip_global_norm:
            norm = math.sqrt(float(np.dot(g, g)))
            np.multiply(g, min(1.0, c.clip_global_norm / (norm + CLIP_NORM_EPSILON)), out=self.work)
            g = self.work
        if c.clip_value:
            np.clip(g, -c.clip_value, c.clip_value, out=self.work)
            g = self.work
        if self.coupled_decay and c.weight_decay:
            np.multiply(self.theta, c.weight_decay, out=self.tmp)
            np.add(g, self.tmp, out=self.work)
            g = self.work
        return g

    def slots(self) -> dict[str, np.ndarray]:
        """The optimizer state, flat like ``theta``, by its canonical name (the buffers themselves)."""
        return {}

    def load_slots(self, slots: dict[str, np.ndarray], step: int) -> None:
        """Continue from ``slots`` (flat like ``theta``) after ``step`` steps (the schedule's too)."""
        for name, buffer in self.slots().items():
            buffer[...] = slots[name]
        self.t = step

    def update(self, grads: np.ndarray) -> None:
        """One step from the flat gradient buffer ``grads`` (left as it is)."""
        self.step(self.learning_rate(), self.prepared_gradient(grads) if self.prepares else grads)


class SGDUpdate(Update):
    """v <- momentum v + g;  W <- W - lr v  (nesterov: W <- W - lr (g + momentum v))."""

    def __init__(self, config, theta):
        super().__init__(config, theta)
        self.velocity = np.zeros_like(theta) if config.momentum else None

    def slots(self):
        return {"velocity": self.velocity} if self.velocity is not None else {}

    def step(self, lr: float, grads: np.ndarray) -> None:
        self.t += 1
        direction = grads
        if self.velocity is not None:
            self.velocity *= self.config.momentum
            self.velocity += grads
            direction = self.velocity
            if self.config.nesterov:
                np.multiply(self.velocity, self.config.momentum, out=self.tmp)
                self.tmp += grads
                direction = self.tmp
        np.multiply(direction, lr, out=self.tmp)
        self.theta -= self.tmp


class AdamUpdate(Update):
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, config, theta):
        super().__init__(config, theta)
        self.m = np.zeros_like(theta)
        self.v = np.zeros_like(theta)

    def slots(self):
        return {"m": self.m, "v": self.v}

    def step(self, lr: float, grads: np.ndarray) -> None:
        self.t += 1
        c, tmp = self.config, self.tmp
        self.m *= c.beta_1
        np.multiply(grads, 1.0 - c.beta_1, out=tmp)
        self.m += tmp
        self.v *= c.beta_2
        np.multiply(grads, grads, out=tmp)
        tmp *= 1.0 - c.beta_2
        self.v += tmp
        np.sqrt(self.v, out=tmp)
        tmp *= 1.0 / np.sqrt(1.0 - c.beta_2 ** self.t)
        tmp += c.epsilon
        np.divide(self.m, tmp, out=tmp)
        tmp *= lr / (1.0 - c.beta_1 ** self.t)
        self.theta -= tmp


class AdamWUpdate(AdamUpdate):
    """W <- W - lr wd W, then Adam's step (decoupled weight decay)."""

    coupled_decay = False

    def step(self, lr: float, grads: np.ndarray) -> None:
        self.theta *= 1.0 - lr * self.config.weight_decay
        super().step(lr, grads)


class RMSpropUpdate(Update):
    """s <- rho s + (1-rho) g^2 (centered: a <- rho a + (1-rho) g, d = sqrt(s - a^2) + eps,
    else d = sqrt(s) + eps);  b <- momentum b + g/d;  W <- W - lr b."""

    def __init__(self, config, theta):
        super().__init__(config, theta)
        self.square_avg = np.zeros_like(theta)
        self.grad_avg = np.zeros_like(theta) if config.centered else None
        self.momentum_buffer = np.zeros_like(theta) if config.momentum else None

    def slots(self):
        named = {"square_avg": self.square_avg, "grad_avg": self.grad_avg, "momentum_buffer": self.momentum_buffer}
        return {name: flat for name, flat in named.items() if flat is not None}

    def denominator(self, out: np.ndarray) -> np.ndarray:
        """sqrt(s) + eps (centered: sqrt(s - a^2) + eps) into ``out``."""
        if self.grad_avg is None:
            np.sqrt(self.square_avg, out=out)
        else:
            np.multiply(self.grad_avg, self.grad_avg, out=out)
            np.subtract(self.square_avg, out, out=out)
            np.sqrt(out, out=out)
        out += self.config.epsilon
        return out

    def step(self, lr: float, grads: np.ndarray) -> None:
        self.t += 1
        c, tmp = self.config, self.tmp
        self.square_avg *= c.rho
        np.multiply(grads, grads, out=tmp)
        tmp *= 1.0 - c.rho
        self.square_avg += tmp
        if self.grad_avg is not None:
            self.grad_avg *= c.rho
            np.multiply(grads, 1.0 - c.rho, out=tmp)
            self.grad_avg += tmp
        np.divide(grads, self.denominator(tmp), out=tmp)
        if self.momentum_buffer is not None:
            self.momentum_buffer *= c.momentum
            self.momentum_buffer += tmp
            np.multiply(self.momentum_buffer, lr, out=tmp)
        else:
            tmp *= lr
        self.theta -= tmp


class AdadeltaUpdate(Update):
    """s <- rho s + (1-rho) g^2;  u = sqrt(x + eps) / sqrt(s + eps) * g;
    x <- rho x + (1-rho) u^2;  W <- W - lr u."""

    def __init__(self, config, theta):
        super().__init__(config, theta)
        self.square_avg = np.zeros_like(theta)
        self.acc_delta = np.zeros_like(theta)
        self.delta = np.empty_like(theta)

    def slots(self):
        return {"square_avg": self.square_avg, "acc_delta": self.acc_delta}

    def step(self, lr: float, grads: np.ndarray) -> None:
        self.t += 1
        c, tmp, delta = self.config, self.tmp, self.delta
        self.square_avg *= c.rho
        np.multiply(grads, grads, out=tmp)
        tmp *= 1.0 - c.rho
        self.square_avg += tmp
        np.add(self.acc_delta, c.epsilon, out=delta)
        np.sqrt(delta, out=delta)
        np.add(self.square_avg, c.epsilon, out=tmp)
        np.sqrt(tmp, out=tmp)
        delta /= tmp
        delta *= grads
        self.acc_delta *= c.rho
        np.multiply(delta, delta, out=tmp)
        tmp *= 1.0 - c.rho
        self.acc_delta += tmp
        delta *= lr
        self.theta -= delta


OPTIMIZERS = {"sgd": SGDUpdate, "adam": AdamUpdate, "adamw": AdamWUpdate, "rmsprop": RMSpropUpdate,
              "adadelta": AdadeltaUpdate}


def build_optimizer(config, params: np.ndarray) -> Update:
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over the
    flat parameter buffer ``params``; ``update(grads)`` takes one step from the
    flat gradient buffer ``grads``."""
    return OPTIMIZERS[config.name](config, params)
