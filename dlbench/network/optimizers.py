"""Optimizers of the spec, their gradient clipping and weight decay, each
convention written once here (``g`` = dE/dW averaged over the batch, ``t`` =
step from 1, ``lr`` = the learning rate of this step, see :mod:`schedules`).

Before any update, in this order (as ``torch.nn.utils.clip_grad_norm_`` then
``optimizer.step()`` run):

* ``clip_global_norm = c``: every trained gradient scaled by
  ``min(1, c / (||g|| + 1e-6))``, ``||g||`` the L2 norm over all of them
  together (torch's ``clip_grad_norm_``; Keras's ``global_clipnorm`` and
  optax's ``clip_by_global_norm`` scale by ``c / max(||g||, c)``, without the
  1e-6: a relative difference of 1e-6 / ||g|| on a clipped step);
* ``clip_value = c``: each gradient value clamped to ``[-c, c]`` (torch's
  ``clip_grad_value_``, Keras's ``clipvalue``, optax's ``clip``);
* ``weight_decay = wd`` on sgd, adam, rmsprop, adadelta: L2 decay coupled to
  the gradient, ``g <- g + wd*W`` (torch's ``weight_decay``; Keras 3's
  ``weight_decay`` is decoupled, as in adamw below).

Updates:

* ``sgd``: ``v <- momentum*v + g;  W <- W - lr*v`` (PyTorch's form); with
  ``nesterov``: ``W <- W - lr*(g + momentum*v)`` (torch's; Keras's
  ``m <- momentum*m - lr*g; W <- W + momentum*m - lr*g`` is the same at a
  constant learning rate). Momentum 0 is plain ``W <- W - lr*g``.
* ``adam``: ``m <- b1*m + (1-b1)*g;  v <- b2*v + (1-b2)*g**2;
  W <- W - lr * (m/(1-b1**t)) / (sqrt(v/(1-b2**t)) + eps)``, epsilon added
  after bias correction as PyTorch and optax do (Keras adds it elsewhere).
  Defaults are Keras's values (lr 0.001, eps 1e-7), since the spec is Keras-like.
* ``adamw``: adam with decoupled weight decay (Loshchilov & Hutter 2019):
  ``W <- W - lr*wd*W`` then the adam step (torch's ``AdamW``, Keras's
  ``AdamW``, optax's ``adamw``: the decay scaled by the scheduled learning
  rate). The spec's default ``weight_decay`` is torch's 0.01 (Keras's is 0.004).
* ``rmsprop``: ``s <- rho*s + (1-rho)*g**2``; centered: ``a <- rho*a + (1-rho)*g``
  and ``d = sqrt(s - a**2) + eps``, else ``d = sqrt(s) + eps``;
  ``b <- momentum*b + g/d;  W <- W - lr*b`` (momentum 0: ``W <- W - lr*g/d``).
  Epsilon outside the root, as torch's ``RMSprop`` and optax's ``rmsprop``
  (``eps_in_sqrt=False``); Keras's ``RMSprop`` puts it inside,
  ``d = sqrt(s + eps)``, and keeps ``lr`` inside its momentum buffer. Defaults
  are Keras's (rho 0.9, eps 1e-7; torch: alpha 0.99, eps 1e-8).
* ``adadelta`` (Zeiler 2012): ``s <- rho*s + (1-rho)*g**2;
  u = sqrt(x + eps) / sqrt(s + eps) * g;  x <- rho*x + (1-rho)*u**2;
  W <- W - lr*u`` (torch's and Keras's ``Adadelta`` alike). Defaults are
  torch's (lr 1.0, rho 0.9, eps 1e-6, as pytorch/examples' MNIST uses it;
  Keras: 0.001, 0.95, 1e-7).

Slots (the optimizer state per trained parameter, in the parameter's shape,
as :class:`dlbench.plugin.backend.TrainingState` carries them): sgd
``velocity`` (with momentum), adam/adamw ``m``, ``v``; rmsprop ``square_avg``,
``grad_avg`` (centered), ``momentum_buffer`` (with momentum); adadelta
``square_avg``, ``acc_delta``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Union

from dlbench.errors import InputError, one_of
from dlbench.network.checks import check_choice, check_number
from dlbench.network.schedules import SCHEDULES, Schedule, make_schedule

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adadelta", "Optimizer", "OPTIMIZERS", "make_optimizer",
           "optimizer_table"]

#: torch's clip_grad_norm_ adds this to the global norm before dividing by it
CLIP_NORM_EPSILON = 1e-6


@dataclass(frozen=True, kw_only=True)
class Common:
    """What every optimizer takes beside its own hyperparameters (keyword only)."""

    clip_global_norm: float | None = None
    clip_value: float | None = None
    schedule: Schedule | None = None

    def __post_init__(self):
        for name in ("clip_global_norm", "clip_value"):
            if getattr(self, name) is not None:
                check_number(getattr(self, name), name, low=0.0)
        if self.schedule is not None and not isinstance(self.schedule, tuple(SCHEDULES.values())):
            raise InputError(f"must be a schedule, got {self.schedule!r}", field="schedule")

    @property
    def slots(self) -> tuple[str, ...]:
        """The state kept per trained parameter (its canonical names)."""
        return ()

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of the step after ``step`` steps taken."""
        return self.learning_rate * (1.0 if self.schedule is None else self.schedule.factor(step))


def _check_decay(value) -> None:
    check_number(value, "weight_decay", low=0.0, low_open=False)


@dataclass(frozen=True)
class SGD(Common):
    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    name: ClassVar[str] = "sgd"

    def __post_init__(self):
        super().__post_init__()
        check_number(self.learning_rate, "learning_rate", low=0.0)
        check_number(self.momentum, "momentum", low=0.0, high=1.0, low_open=False)
        _check_decay(self.weight_decay)
        if not isinstance(self.nesterov, bool):
            raise InputError(f"must be true or false, got {self.nesterov!r}", field="nesterov")
        if self.nesterov and not self.momentum:
            raise InputError("nesterov needs a momentum above 0", field="nesterov")

    @property
    def slots(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum else ()


@dataclass(frozen=True)
class Adam(Common):
    learning_rate: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    weight_decay: float = 0.0
    name: ClassVar[str] = "adam"

    def __post_init__(self):
        super().__post_init__()
        check_number(self.learning_rate, "learning_rate", low=0.0)
        check_number(self.beta_1, "beta_1", low=0.0, high=1.0, low_open=False)
        check_number(self.beta_2, "beta_2", low=0.0, high=1.0, low_open=False)
        check_number(self.epsilon, "epsilon", low=0.0)
        _check_decay(self.weight_decay)

    @property
    def slots(self) -> tuple[str, ...]:
        return ("m", "v")


@dataclass(frozen=True)
class AdamW(Adam):
    weight_decay: float = 0.01
    name: ClassVar[str] = "adamw"


@dataclass(frozen=True)
class RMSprop(Common):
    learning_rate: float = 0.001
    rho: float = 0.9
    epsilon: float = 1e-7
    momentum: float = 0.0
    centered: bool = False
    weight_decay: float = 0.0
    name: ClassVar[str] = "rmsprop"

    def __post_init__(self):
        super().__post_init__()
        check_number(self.learning_rate, "learning_rate", low=0.0)
        check_number(self.rho, "rho", low=0.0, high=1.0, low_open=False)
        check_number(self.epsilon, "epsilon", low=0.0)
        check_number(self.momentum, "momentum", low=0.0, high=1.0, low_open=False)
        _check_decay(self.weight_decay)
        if not isinstance(self.centered, bool):
            raise InputError(f"must be true or false, got {self.centered!r}", field="centered")

    @property
    def slots(self) -> tuple[str, ...]:
        return ("square_avg",) + (("grad_avg",) if self.centered else ()) + \
            (("momentum_buffer",) if self.momentum else ())


@dataclass(frozen=True)
class Adadelta(Common):
    learning_rate: float = 1.0
    rho: float = 0.9
    epsilon: float = 1e-6
    weight_decay: float = 0.0
    name: ClassVar[str] = "adadelta"

    def __post_init__(self):
        super().__post_init__()
        check_number(self.learning_rate, "learning_rate", low=0.0)
        check_number(self.rho, "rho", low=0.0, high=1.0, low_open=False)
        check_number(self.epsilon, "epsilon", low=0.0)
        _check_decay(self.weight_decay)

    @property
    def slots(self) -> tuple[str, ...]:
        return ("square_avg", "acc_delta")


Optimizer = Union[SGD, Adam, AdamW, RMSprop, Adadelta]
OPTIMIZERS: dict[str, type] = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSprop, Adadelta)}


def make_optimizer(optimizer) -> Optimizer:
    """'adam', {'name': 'sgd', 'learning_rate': 0.1, 'schedule': {...}} or an optimizer instance."""
    if isinstance(optimizer, tuple(OPTIMIZERS.values())):
        return optimizer
    if isinstance(optimizer, str):
        optimizer = {"name": optimizer}
    if not isinstance(optimizer, dict):
        raise InputError(f"must be a name or a table, got {optimizer!r}", field="optimizer")
    options = dict(optimizer)
    name = check_choice(options.pop("name", None), OPTIMIZERS, "optimizer.name")
    cls = OPTIMIZERS[name]
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in options:
        if key not in allowed:
            raise InputError(f"unknown key {key!r}; {one_of(allowed)}", field=f"optimizer.{key}")
    try:
        if options.get("schedule") is not None:
            options["schedule"] = make_schedule(options["schedule"])
        return cls(**options)
    except InputError as exc:
        raise exc.within(field_prefix="optimizer") from None


#: options written to a scenario file only where set, so that a file written for an
#: optimizer without them is the same text it was before they existed (its digest too)
OPTIONS_WRITTEN_WHEN_SET = ("nesterov", "centered", "weight_decay", "clip_global_norm", "clip_value", "schedule")


def optimizer_table(optimizer: Optimizer) -> dict:
    """The optimizer as a scenario file's table (what :func:`make_optimizer` reads back):
    every hyper-parameter, and the options of :data:`OPTIONS_WRITTEN_WHEN_SET` not at their default."""
    table = {"name": optimizer.name}
    for f in dataclasses.fields(optimizer):
        value = getattr(optimizer, f.name)
        if f.name in OPTIONS_WRITTEN_WHEN_SET and value == f.default:
            continue
        table[f.name] = {"name": value.name, **dataclasses.asdict(value)} if f.name == "schedule" else value
    return table
