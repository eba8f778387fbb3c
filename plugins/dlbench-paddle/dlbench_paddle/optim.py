"""The Paddle backend's optimizers: ``paddle.optimizer``'s own, whose maths is
the canonical one (:mod:`dlbench.network`):

* Adam: Paddle computes ``lr_t = lr sqrt(1-b2^t) / (1-b1^t)`` and
  ``W -= lr_t m / (sqrt(v) + eps sqrt(1-b2^t))``, which is the canonical
  ``W -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)`` (epsilon after bias
  correction, torch's placement) multiplied out. The spec's epsilon is passed
  explicitly (Keras's default 1e-7 is not Paddle's 1e-8).
* SGD with momentum: ``paddle.optimizer.Momentum`` (``v <- momentum v + g;
  W -= lr v``, no Nesterov, no dampening); without momentum ``paddle.optimizer.SGD``.

The optimizer state is read and written through the optimizer's public
``state_dict()`` / ``set_state_dict()``: Adam's ``moment1``/``moment2`` are the
spec's ``m``/``v``; its step lives in ``beta1_pow_acc``/``beta2_pow_acc``,
which hold ``b^(t+1)`` after t steps (the power the next step uses), a
float32 product (:func:`beta_power`). Paddle
creates the accumulators on the first step; a state set before then waits in
the optimizer and is taken when they are created.
"""

from __future__ import annotations

import numpy as np
import paddle

from dlbench.plugin.backend import slot_names

#: the spec's slot names as Paddle names its accumulators.
ACCUMULATORS = {"m": "moment1", "v": "moment2", "velocity": "velocity"}


class PaddleOptimizer:
    """``config``'s paddle.optimizer over ``params``: ``update()`` steps on the
    gradients in ``.grad``; ``slots`` / ``load_slots`` read and write the state
    of one parameter in Paddle's layout."""

    def __init__(self, config, params: list):
        self.config, self.params = config, params
        self.names = slot_names(config)
        self.optimizer = _native(config, params)

    def update(self) -> None:
        self.optimizer.step()

    def _key(self, param, accumulator: str) -> str:
        return f"{param.name}_{accumulator}_0"

    def slots(self, param) -> dict[str, np.ndarray]:
        """{slot: its array} of one parameter (zeros before the first step)."""
        state = self.optimizer.state_dict()
        return {slot: state[self._key(param, ACCUMULATORS[slot])].numpy() if self._key(param, ACCUMULATORS[slot])
                in state else np.zeros(param.shape, np.float32) for slot in self.names}

    def load_slots(self, arrays: dict, step: int) -> None:
        """Set every parameter's slots (``arrays``: {parameter name: {slot: array}}) and Adam's step."""
        state = {}
        for param in self.params:
            for slot, value in arrays[param.name].items():
                state[self._key(param, ACCUMULATORS[slot])] = paddle.to_tensor(np.asarray(value, np.float32))
            if self.config.name == "adam":
                for accumulator, beta in (("beta1_pow_acc", self.config.beta_1), ("beta2_pow_acc", self.config.beta_2)):
                    state[self._key(param, accumulator)] = paddle.to_tensor(beta_power(beta, step))
        self.optimizer.set_state_dict(state)


def beta_power(beta: float, step: int) -> np.ndarray:
    """``beta^(step+1)`` as Paddle's accumulator holds it after ``step`` steps: the
    float32 product of its float32 start ``beta`` and ``step`` float32 multiplications,
    so that a loaded state continues bit for bit as the one it was taken from."""
    b = np.float32(beta)
    power = b
    for _ in range(step):
        power = np.float32(power * b)
    return np.array([power], np.float32)


def _native(config, params: list):
    if config.name == "adam":
        return paddle.optimizer.Adam(learning_rate=config.learning_rate, beta1=config.beta_1, beta2=config.beta_2,
                                     epsilon=config.epsilon, parameters=params, weight_decay=None, lazy_mode=False)
    if config.momentum:
        return paddle.optimizer.Momentum(learning_rate=config.learning_rate, momentum=config.momentum,
                                         parameters=params, use_nesterov=False, weight_decay=None)
    return paddle.optimizer.SGD(learning_rate=config.learning_rate, parameters=params, weight_decay=None)


def build_optimizer(config, params: list) -> PaddleOptimizer:
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over ``params``."""
    return PaddleOptimizer(config, params)
