"""The Paddle backend's optimizers.

* SGD with momentum: ``paddle.optimizer.Momentum`` (``v <- momentum v + g;
  W -= lr v``, no Nesterov, no dampening), without momentum
  ``paddle.optimizer.SGD``: their maths and float32 rounding are the spec's.
  Their state is read and written through the optimizer's public
  ``state_dict()`` / ``set_state_dict()`` (Paddle creates the ``velocity``
  accumulators on the first step; a state set before then waits in the
  optimizer and is taken when they are created).
* Adam: the canonical update (:class:`AdamUpdate`) in Paddle ops, not
  ``paddle.optimizer.Adam``. Paddle's Adam has the spec's formula (epsilon
  after bias correction, multiplied out: ``lr_t = lr sqrt(1-b2^t)/(1-b1^t)``,
  ``W -= lr_t m / (sqrt(v) + eps sqrt(1-b2^t))``) but computes in float32 from
  float32 attributes: ``1 - beta2`` from float32(0.999) is 1.3e-5 away from
  0.001, and the bias corrections come from a running float32 product
  ``beta_pow *= beta``. That drift is systematic (every step, every
  parameter), and the certificate found it: digits-cnn judged 5/8 checkpoints
  within rounding, the worst a bias 1.46x over its rounding tolerance. The
  canonical update computes ``1 - b`` and the bias corrections in float64 on
  the host, as the NumPy reference does, and rounds them to float32 once.
* AdamW, RMSprop, Adadelta, SGD with Nesterov, weight decay, clipping or a
  learning-rate schedule: the canonical updates of
  :mod:`dlbench.network.optimizers` in Paddle ops too (:class:`Update`), the
  learning rate of each step from the schedule on the host in float64 (the
  trainer steps from the host), clipping by global norm (torch's
  ``c / (||g|| + 1e-6)``) then by value, and coupled weight decay ``g + wd W``
  before the update, as the NumPy reference orders them.
"""

from __future__ import annotations

import math

import numpy as np
import paddle

from dlbench.network.optimizers import CLIP_NORM_EPSILON
from dlbench.plugin.backend import slot_names

#: the spec's slot names as Paddle names its accumulators.
ACCUMULATORS = {"velocity": "velocity"}


class Update:
    """What the canonical updates share: one zero tensor per slot and parameter,
    the steps taken ``t``, the scheduled learning rate and the gradient after
    clipping and coupled weight decay; ``apply(grads, lr)`` is each optimizer's,
    in place with Paddle's ops under ``no_grad``, every scalar a Python float."""

    #: whether ``weight_decay`` is added to the gradient (AdamW decays the weights instead)
    coupled_decay = True

    def __init__(self, config, params: list):
        self.config, self.params = config, params
        self.slots = {name: [paddle.zeros_like(p) for p in params] for name in config.slots}
        self.t = 0

    def gradients(self) -> list:
        """The ``.grad`` of every parameter clipped by global norm, then by value, plus ``wd W``."""
        c, grads = self.config, [p.grad for p in self.params]
        if c.clip_global_norm:
            norm = paddle.sqrt(paddle.add_n([(g * g).sum() for g in grads]))
            scale = paddle.clip(c.clip_global_norm / (norm + CLIP_NORM_EPSILON), max=1.0)
            grads = [g * scale for g in grads]
        if c.clip_value:
            grads = [paddle.clip(g, -c.clip_value, c.clip_value) for g in grads]
        if self.coupled_decay and c.weight_decay:
            grads = [g + p.scale(c.weight_decay) for g, p in zip(grads, self.params)]
        return grads

    @paddle.no_grad()
    def step(self) -> None:
        lr = float(self.config.learning_rate_at(self.t))  # the schedule at the steps taken before this one
        grads = self.gradients()
        self.t += 1
        self.apply(grads, lr)


class SGDUpdate(Update):
    """v <- momentum v + g;  W <- W - lr v  (nesterov: W <- W - lr (g + momentum v))."""

    def apply(self, grads: list, lr: float) -> None:
        c = self.config
        for k, (p, g) in enumerate(zip(self.params, grads)):
            direction = g
            if c.momentum:
                v = self.slots["velocity"][k]
                v.scale_(c.momentum).add_(g)
                direction = g + v.scale(c.momentum) if c.nesterov else v
            p.subtract_(direction.scale(lr))


class AdamUpdate(Update):
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def apply(self, grads: list, lr: float) -> None:
        c = self.config
        rate = lr / (1.0 - c.beta_1 ** self.t)
        root = 1.0 / math.sqrt(1.0 - c.beta_2 ** self.t)
        one_minus_b1, one_minus_b2 = 1.0 - c.beta_1, 1.0 - c.beta_2
        for p, g, m, v in zip(self.params, grads, self.slots["m"], self.slots["v"]):
            self.decay(p, lr)
            m.scale_(c.beta_1).add_(g.scale(one_minus_b1))
            v.scale_(c.beta_2).add_((g * g).scale(one_minus_b2))
            p.subtract_((m / v.sqrt().scale(root, bias=c.epsilon)).scale(rate))

    def decay(self, p, lr: float) -> None:
        """Adam's weight decay is in the gradient (coupled): nothing here."""


class AdamWUpdate(AdamUpdate):
    """W <- W - lr wd W (decoupled), then Adam's step."""

    coupled_decay = False

    def decay(self, p, lr: float) -> None:
        p.scale_(1.0 - lr * self.config.weight_decay)


class RMSpropUpdate(Update):
    """s <- rho s + (1-rho) g^2 (centered: a <- rho a + (1-rho) g, d = sqrt(s - a^2) + eps,
    else d = sqrt(s) + eps);  b <- momentum b + g/d;  W <- W - lr b."""

    def apply(self, grads: list, lr: float) -> None:
        c, slots = self.config, self.slots
        for k, (p, g) in enumerate(zip(self.params, grads)):
            s = slots["square_avg"][k]
            s.scale_(c.rho).add_((g * g).scale(1.0 - c.rho))
            if c.centered:
                a = slots["grad_avg"][k]
                a.scale_(c.rho).add_(g.scale(1.0 - c.rho))
                denominator = (s - a * a).sqrt().scale(1.0, bias=c.epsilon)
            else:
                denominator = s.sqrt().scale(1.0, bias=c.epsilon)
            direction = g / denominator
            if c.momentum:
                direction = slots["momentum_buffer"][k].scale_(c.momentum).add_(direction)
            p.subtract_(direction.scale(lr))


class AdadeltaUpdate(Update):
    """s <- rho s + (1-rho) g^2;  u = sqrt(x + eps) / sqrt(s + eps) * g;
    x <- rho x + (1-rho) u^2;  W <- W - lr u."""

    def apply(self, grads: list, lr: float) -> None:
        c = self.config
        for p, g, s, x in zip(self.params, grads, self.slots["square_avg"], self.slots["acc_delta"]):
            s.scale_(c.rho).add_((g * g).scale(1.0 - c.rho))
            delta = x.scale(1.0, bias=c.epsilon).sqrt() / s.scale(1.0, bias=c.epsilon).sqrt() * g
            x.scale_(c.rho).add_((delta * delta).scale(1.0 - c.rho))
            p.subtract_(delta.scale(lr))


CANONICAL = {"sgd": SGDUpdate, "adam": AdamUpdate, "adamw": AdamWUpdate, "rmsprop": RMSpropUpdate,
             "adadelta": AdadeltaUpdate}


def native(config) -> bool:
    """Whether Paddle's own SGD / Momentum runs ``config``: an SGD without Nesterov,
    weight decay, clipping or a schedule."""
    return (config.name == "sgd" and not config.nesterov and not config.weight_decay and config.schedule is None
            and not config.clip_global_norm and not config.clip_value)


class PaddleOptimizer:
    """``config``'s optimizer over ``params``: ``update()`` steps on the
    gradients in ``.grad``; ``slots`` / ``load_slots`` read and write the state
    of one parameter in Paddle's layout."""

    def __init__(self, config, params: list):
        self.config, self.params = config, params
        self.names = slot_names(config)
        self.native = native(config)
        self.optimizer = _native(config, params) if self.native else CANONICAL[config.name](config, params)

    def update(self) -> None:
        self.optimizer.step()

    def _key(self, param, accumulator: str) -> str:
        return f"{param.name}_{accumulator}_0"

    def slots(self, param) -> dict[str, np.ndarray]:
        """{slot: its array} of one parameter (zeros before the first step)."""
        if not self.native:
            k = next(i for i, p in enumerate(self.params) if p is param)  # == on tensors compares elements
            return {name: tensors[k].numpy() for name, tensors in self.optimizer.slots.items()}
        state = self.optimizer.state_dict()
        return {slot: state[self._key(param, ACCUMULATORS[slot])].numpy() if self._key(param, ACCUMULATORS[slot])
                in state else np.zeros(param.shape, np.float32) for slot in self.names}

    def load_slots(self, arrays: dict, step: int) -> None:
        """Set every parameter's slots (``arrays``: {parameter name: {slot: array}}) and the step count."""
        if not self.native:
            for k, param in enumerate(self.params):
                for name, tensors in self.optimizer.slots.items():
                    tensors[k].set_value(np.asarray(arrays[param.name][name], np.float32))
            self.optimizer.t = step
            return
        state = {}
        for param in self.params:
            for slot, value in arrays[param.name].items():
                state[self._key(param, ACCUMULATORS[slot])] = paddle.to_tensor(np.asarray(value, np.float32))
        self.optimizer.set_state_dict(state)


def _native(config, params: list):
    """paddle.optimizer's SGD or Momentum for a plain SGD spec."""
    if config.momentum:
        return paddle.optimizer.Momentum(learning_rate=config.learning_rate, momentum=config.momentum,
                                         parameters=params, use_nesterov=False, weight_decay=None)
    return paddle.optimizer.SGD(learning_rate=config.learning_rate, parameters=params, weight_decay=None)


def build_optimizer(config, params: list) -> PaddleOptimizer:
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over ``params``."""
    return PaddleOptimizer(config, params)
