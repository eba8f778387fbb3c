"""Learning-rate schedules, evaluated per optimizer step: the step after ``t``
steps taken (``t`` = 0 for the first step; a step fp16's loss scaling skips
is not taken) uses ``learning_rate * factor(t)``.

* ``step``: ``gamma ** floor(t / step_size)`` (torch's ``StepLR`` stepped per
  batch; Keras's ``ExponentialDecay(decay_steps=step_size, decay_rate=gamma,
  staircase=True)``; optax's ``exponential_decay(..., staircase=True)``).
* ``exponential``: ``gamma ** t`` (torch's ``ExponentialLR``; Keras's
  ``ExponentialDecay(decay_steps=1, decay_rate=gamma)``).
* ``cosine``: ``alpha + (1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2``,
  ``T = decay_steps`` (Keras's ``CosineDecay`` and optax's
  ``cosine_decay_schedule``, which hold the last value after ``T``; torch's
  ``CosineAnnealingLR(T_max=T, eta_min=alpha*lr)`` is the same up to ``T``,
  its recursive form equal to rounding, and rises again after it).
* ``warmup_cosine``: ``t / W`` for ``t < W = warmup_steps`` (from 0, as
  optax's ``warmup_cosine_decay_schedule(init_value=0)`` and Hugging Face's
  ``get_cosine_schedule_with_warmup``), then the cosine above over the
  ``decay_steps - W`` steps after the warm-up (``decay_steps`` counts the
  warm-up, as optax's and Hugging Face's do; Keras's
  ``CosineDecay(warmup_steps=W, decay_steps=T - W)`` counts it apart).
* ``warmup_linear``: ``t / W`` during the warm-up, then
  ``1 - (1 - alpha) * min(t - W, T - W) / (T - W)`` (Hugging Face's
  ``get_linear_schedule_with_warmup`` at alpha 0).

Each factor is written once, branch-free, over an ``ops`` namespace (floor,
cos, minimum and maximum with a constant, power of a constant), so every
backend evaluates the same formula in its own ops: NumPy in float64 (the
reference), each framework on its device without a host round trip.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dlbench.errors import InputError, one_of
from dlbench.network.checks import check_choice, check_number, check_positive_int

__all__ = ["StepDecay", "ExponentialDecay", "CosineDecay", "WarmupCosine", "WarmupLinear", "Schedule",
           "SCHEDULES", "make_schedule", "NUMPY_OPS"]


class NumpyOps:
    """The ops a schedule's factor needs, in NumPy (float64, as the reference runs)."""

    floor, cos = staticmethod(np.floor), staticmethod(np.cos)

    @staticmethod
    def minimum(x, c: float):
        return np.minimum(x, c)

    @staticmethod
    def maximum(x, c: float):
        return np.maximum(x, c)

    @staticmethod
    def power(base: float, x):
        return np.power(base, x)


NUMPY_OPS = NumpyOps()


@dataclass(frozen=True)
class StepDecay:
    step_size: int
    gamma: float = 0.1
    name: ClassVar[str] = "step"

    def __post_init__(self):
        check_positive_int(self.step_size, "step_size")
        check_number(self.gamma, "gamma", low=0.0, high=1.0, high_open=False)

    def factor(self, t, ops=NUMPY_OPS):
        return ops.power(self.gamma, ops.floor(t / self.step_size))


@dataclass(frozen=True)
class ExponentialDecay:
    gamma: float
    name: ClassVar[str] = "exponential"

    def __post_init__(self):
        check_number(self.gamma, "gamma", low=0.0, high=1.0, high_open=False)

    def factor(self, t, ops=NUMPY_OPS):
        return ops.power(self.gamma, t)


def _cosine(t, steps: int, alpha: float, ops):
    """alpha + (1 - alpha) * (1 + cos(pi * min(t, steps) / steps)) / 2."""
    return alpha + (1.0 - alpha) * 0.5 * (1.0 + ops.cos(ops.minimum(t, steps) * (math.pi / steps)))


def _linear(t, steps: int, alpha: float, ops):
    """1 - (1 - alpha) * min(t, steps) / steps."""
    return 1.0 - (1.0 - alpha) * (ops.minimum(t, steps) / steps)


def _check_alpha(alpha) -> None:
    check_number(alpha, "alpha", low=0.0, high=1.0, low_open=False, high_open=False)


@dataclass(frozen=True)
class CosineDecay:
    decay_steps: int
    alpha: float = 0.0
    name: ClassVar[str] = "cosine"

    def __post_init__(self):
        check_positive_int(self.decay_steps, "decay_steps")
        _check_alpha(self.alpha)

    def factor(self, t, ops=NUMPY_OPS):
        return _cosine(t, self.decay_steps, self.alpha, ops)


@dataclass(frozen=True)
class WarmupCosine:
    warmup_steps: int
    decay_steps: int
    alpha: float = 0.0
    name: ClassVar[str] = "warmup_cosine"
    decay: ClassVar = staticmethod(_cosine)

    def __post_init__(self):
        check_positive_int(self.warmup_steps, "warmup_steps")
        check_positive_int(self.decay_steps, "decay_steps")
        _check_alpha(self.alpha)
        if self.decay_steps <= self.warmup_steps:
            raise InputError(f"must be more than warmup_steps ({self.warmup_steps}): it counts the warm-up, "
                             f"got {self.decay_steps}", field="decay_steps")

    def factor(self, t, ops=NUMPY_OPS):
        """min(t/W, 1) * decay(max(t - W, 0)): t/W during the warm-up (decay(0) = 1), decay after it."""
        w = self.warmup_steps
        return ops.minimum(t / w, 1.0) * self.decay(ops.maximum(t - w, 0.0), self.decay_steps - w, self.alpha, ops)


@dataclass(frozen=True)
class WarmupLinear(WarmupCosine):
    name: ClassVar[str] = "warmup_linear"
    decay: ClassVar = staticmethod(_linear)


Schedule = StepDecay | ExponentialDecay | CosineDecay | WarmupCosine | WarmupLinear
SCHEDULES: dict[str, type] = {cls.name: cls for cls in (StepDecay, ExponentialDecay, CosineDecay, WarmupCosine,
                                                          WarmupLinear)}


def make_schedule(schedule) -> Schedule:
    """{'name': 'cosine', 'decay_steps': 1000} or a schedule instance."""
    if isinstance(schedule, tuple(SCHEDULES.values())):
        return schedule
    if not isinstance(schedule, dict):
        raise InputError(f"must be a table with a name, got {schedule!r}", field="schedule")
    options = dict(schedule)
    name = check_choice(options.pop("name", None), SCHEDULES, "schedule.name")
    cls = SCHEDULES[name]
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in options:
        if key not in allowed:
            raise InputError(f"unknown key {key!r}; {one_of(allowed)}", field=f"schedule.{key}")
    missing = [key for key, f in cls.__dataclass_fields__.items() if key not in options
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InputError(f"{name} needs {', '.join(missing)}", field="schedule")
    try:
        return cls(**options)
    except InputError as exc:
        raise exc.within(field_prefix="schedule") from None
