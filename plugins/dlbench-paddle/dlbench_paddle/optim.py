"""The Paddle backend's optimizers.

* SGD with momentum: ``paddle.optimizer.Momentum`` (``v <- momentum v + g;
  W -= lr v``, no Nesterov, no dampening), without momentum
  ``paddle.optimizer.SGD``: their maths and float32 rounding are the spec's.
  Their state is read and written through the optimizer's public
  ``state_dict()`` / ``set_state_dict()`` (Paddle creates the ``velocity``
  accumulators on the first step; a state set before then waits in the
  optimizer and is taken when they are created).
* Adam: the canonical update (:class:`CanonicalAdam`) in Paddle ops, not
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
"""

from __future__ import annotations

import math

import numpy as np
import paddle

from dlbench.plugin.backend import slot_names

#: the spec's slot names as Paddle names its accumulators.
ACCUMULATORS = {"velocity": "velocity"}


class CanonicalAdam:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), in place, with
    Paddle's in-place ops under ``no_grad``; the step count ``t`` and every
    scalar are computed on the host in float64."""

    def __init__(self, config, params: list):
        self.config, self.params = config, params
        self.m = [paddle.zeros_like(p) for p in params]
        self.v = [paddle.zeros_like(p) for p in params]
        self.t = 0

    @paddle.no_grad()
    def step(self) -> None:
        c = self.config
        self.t += 1
        rate = c.learning_rate / (1.0 - c.beta_1 ** self.t)
        root = 1.0 / math.sqrt(1.0 - c.beta_2 ** self.t)
        one_minus_b1, one_minus_b2 = 1.0 - c.beta_1, 1.0 - c.beta_2
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m.scale_(c.beta_1).add_(g.scale(one_minus_b1))
            v.scale_(c.beta_2).add_((g * g).scale(one_minus_b2))
            p.subtract_((m / v.sqrt().scale(root, bias=c.epsilon)).scale(rate))


class PaddleOptimizer:
    """``config``'s paddle.optimizer over ``params``: ``update()`` steps on the
    gradients in ``.grad``; ``slots`` / ``load_slots`` read and write the state
    of one parameter in Paddle's layout."""

    def __init__(self, config, params: list):
        self.config, self.params = config, params
        self.names = slot_names(config)
        self.optimizer = CanonicalAdam(config, params) if config.name == "adam" else _native(config, params)

    def update(self) -> None:
        self.optimizer.step()

    def _key(self, param, accumulator: str) -> str:
        return f"{param.name}_{accumulator}_0"

    def slots(self, param) -> dict[str, np.ndarray]:
        """{slot: its array} of one parameter (zeros before the first step)."""
        if self.config.name == "adam":
            k = next(i for i, p in enumerate(self.params) if p is param)  # == on tensors compares elements
            return {"m": self.optimizer.m[k].numpy(), "v": self.optimizer.v[k].numpy()}
        state = self.optimizer.state_dict()
        return {slot: state[self._key(param, ACCUMULATORS[slot])].numpy() if self._key(param, ACCUMULATORS[slot])
                in state else np.zeros(param.shape, np.float32) for slot in self.names}

    def load_slots(self, arrays: dict, step: int) -> None:
        """Set every parameter's slots (``arrays``: {parameter name: {slot: array}}) and Adam's step."""
        if self.config.name == "adam":
            for param, m, v in zip(self.params, self.optimizer.m, self.optimizer.v):
                m.set_value(np.asarray(arrays[param.name]["m"], np.float32))
                v.set_value(np.asarray(arrays[param.name]["v"], np.float32))
            self.optimizer.t = step
            return
        state = {}
        for param in self.params:
            for slot, value in arrays[param.name].items():
                state[self._key(param, ACCUMULATORS[slot])] = paddle.to_tensor(np.asarray(value, np.float32))
        self.optimizer.set_state_dict(state)


def _native(config, params: list):
    """paddle.optimizer's SGD or Momentum for an SGD spec."""
    if config.momentum:
        return paddle.optimizer.Momentum(learning_rate=config.learning_rate, momentum=config.momentum,
                                         parameters=params, use_nesterov=False, weight_decay=None)
    return paddle.optimizer.SGD(learning_rate=config.learning_rate, parameters=params, weight_decay=None)


def build_optimizer(config, params: list) -> PaddleOptimizer:
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over ``params``."""
    return PaddleOptimizer(config, params)
