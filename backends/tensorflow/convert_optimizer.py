"""A Keras optimizer read as the spec's (:mod:`dlbench.network.optimizers`):
Adam, AdamW, SGD (nesterov too), RMSprop and Adadelta with their hyper-parameters,
``global_clipnorm`` as ``clip_global_norm``, ``clipvalue`` as ``clip_value``, and
a ``learning_rate`` schedule of ``ExponentialDecay`` (staircase: ``step``; else
``exponential`` with ``gamma = decay_rate ** (1 / decay_steps)``) or
``CosineDecay`` (with a warm-up from 0: ``warmup_cosine``, whose
``decay_steps`` counts the warm-up).

Where Keras's convention is not the spec's it says so or refuses:

* Adam's and RMSprop's ``epsilon`` are taken as they are, though Keras adds
  Adam's to the uncorrected root and puts RMSprop's inside the root (the
  spec's are torch's): a difference of the size of epsilon over the root;
* Keras's ``weight_decay`` is decoupled on every optimizer: AdamW's is the
  spec's; on the others it is refused (the spec's is coupled, L2);
* Keras keeps the learning rate inside SGD's and RMSprop's momentum buffer,
  the spec's form at a constant rate only: momentum under a schedule is refused;
* per-variable ``clipnorm``, EMA, gradient accumulation, AMSGrad are refused.
"""

from __future__ import annotations

from dlbench.errors import InputError, one_of
from dlbench.network import (OPTIMIZERS, CosineDecay, ExponentialDecay, StepDecay, WarmupCosine, make_optimizer)
from dlbench.network.imported import literal

#: per Keras optimizer class, its hyper-parameters the spec has under the same name
KERAS_FIELDS = {"Adam": ("beta_1", "beta_2", "epsilon"), "AdamW": ("beta_1", "beta_2", "epsilon", "weight_decay"),
                "SGD": ("momentum", "nesterov"), "RMSprop": ("rho", "epsilon", "momentum", "centered"),
                "Adadelta": ("rho", "epsilon")}
REFUSED = ("clipnorm", "gradient_accumulation_steps", "loss_scale_factor", "use_ema", "amsgrad")


def keras_optimizer(keras, optimizer):
    """The spec's optimizer of a Keras optimizer (or a dlbench optimizer, name or table)."""
    if optimizer is None:
        raise InputError("the model is not compiled: compile it with a loss and an optimizer, or pass loss= and "
                         "optimizer=", field="optimizer")
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return make_optimizer(optimizer)
    kind, config = type(optimizer).__name__, optimizer.get_config()
    if kind not in KERAS_FIELDS:
        raise InputError(f"optimizer {kind} cannot be read; {one_of(KERAS_FIELDS)}", field="optimizer")
    refused = [key for key in REFUSED + (() if kind == "AdamW" else ("weight_decay",)) if config.get(key)]
    if refused:
        key = refused[0]
        raise InputError(f"{kind} with {key}={config[key]!r} has no counterpart in a dlbench optimizer",
                         field="optimizer")
    fields = {key: config[key] for key in KERAS_FIELDS[kind]}
    fields = {key: value if isinstance(value, bool) else float(value) for key, value in fields.items()}
    rate = getattr(optimizer, "_learning_rate", None)
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        if fields.get("momentum"):
            raise InputError(f"{kind} with momentum under a schedule keeps the learning rate inside its momentum "
                             "buffer (the spec's is outside it, as torch's): give a constant learning_rate or "
                             "momentum=0", field="optimizer")
        fields["learning_rate"], fields["schedule"] = keras_schedule(rate)
    else:
        fields["learning_rate"] = literal(config["learning_rate"])  # a float32 variable; others the floats given
    if config.get("global_clipnorm"):
        fields["clip_global_norm"] = float(config["global_clipnorm"])
    if config.get("clipvalue"):
        fields["clip_value"] = float(config["clipvalue"])
    return OPTIMIZERS[kind.lower()](**fields)


def keras_schedule(schedule) -> tuple:
    """(the peak learning rate, the spec's schedule) of a Keras learning-rate schedule."""
    kind, config = type(schedule).__name__, schedule.get_config()
    if kind == "ExponentialDecay":
        steps, rate = int(config["decay_steps"]), float(config["decay_rate"])
        decay = StepDecay(steps, rate) if config["staircase"] else ExponentialDecay(rate ** (1.0 / steps))
        return float(config["initial_learning_rate"]), decay
    if kind == "CosineDecay":
        warmup, steps, alpha = int(config["warmup_steps"]), int(config["decay_steps"]), float(config["alpha"])
        if not warmup:
            return float(config["initial_learning_rate"]), CosineDecay(steps, alpha)
        if float(config["initial_learning_rate"]) != 0.0:
            raise InputError("CosineDecay's warm-up starts from initial_learning_rate; the spec's warm-up starts "
                             "from 0", field="optimizer")
        return float(config["warmup_target"]), WarmupCosine(warmup, warmup + steps, alpha)
    raise InputError(f"learning-rate schedule {kind} cannot be read; expected one of CosineDecay, ExponentialDecay",
                     field="optimizer")
