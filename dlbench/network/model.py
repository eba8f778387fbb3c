"""The backend-agnostic network spec: optimizers, the compiled model, training.

Everything here is a frozen dataclass, validated on construction, with no
framework imports. Shapes exclude the batch axis and are channels-last;
the layers and their conventions are in :mod:`dlbench.network.layers`.

Loss and output activation are fused by every backend: the last layer's
softmax (or sigmoid) is never applied before the loss; cross-entropy is
computed from its logits, which is what makes the backends' numbers agree.
The losses, their options and their conventions are in
:mod:`dlbench.network.loss`. On a per-timestep output ``(time, classes)`` (a
language model) categorical_crossentropy's labels are ``(batch, time)`` and
the mean is over every token of the batch; the perplexity reported beside it
is ``exp`` of that mean.

Optimizers, their clipping, weight decay and learning-rate schedules:
:mod:`dlbench.network.optimizers` and :mod:`dlbench.network.schedules`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from dlbench.errors import InputError
from dlbench.network.checks import Shape, check_choice, check_number, check_positive_int, format_shape
from dlbench.network.loss import LOSSES, make_loss
from dlbench.network.optimizers import (OPTIMIZERS, SGD, Adadelta, Adam, AdamW, Optimizer, RMSprop,
                                         make_optimizer, optimizer_table)
from dlbench.network.schedules import SCHEDULES, CosineDecay, ExponentialDecay, StepDecay, WarmupCosine, WarmupLinear
from dlbench.network.layers import Activation, Dropout, activation_alpha, is_trained, layer_activation
from dlbench.network.transformer import chain_shapes, nested_layers

__all__ = ["LOSSES", "SGD", "Adam", "AdamW", "RMSprop", "Adadelta", "Optimizer", "OPTIMIZERS", "ModelSpec",
           "make_optimizer", "optimizer_table", "Sequential", "TrainSpec", "StepDecay", "ExponentialDecay",
           "CosineDecay", "WarmupCosine", "WarmupLinear", "SCHEDULES"]



# ---------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelSpec:
    """A compiled Sequential model: layers with inferred shapes, loss, optimizer."""

    input_shape: Shape
    layers: tuple
    loss: str
    optimizer: Optimizer
    #: the loss's options, its defaults filled in, as sorted (key, value) pairs (see :mod:`dlbench.network.loss`)
    loss_options: tuple = ()
    shapes: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.layers:
            raise InputError("a model needs at least one layer", field="layers")
        shape = tuple(self.input_shape)
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape):
            raise InputError(f"must be a list of positive integers, got {list(self.input_shape)!r}",
                             field="input_shape")
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "shapes", tuple(chain_shapes(self.layers, shape, "layers")))
        given = self.loss
        if self.loss_options:  # a copy (dataclasses.replace) or options given beside the name
            given = {**(given if isinstance(given, dict) else {"name": given}), **dict(self.loss_options)}
        name, options = make_loss(given)
        object.__setattr__(self, "loss", name)
        object.__setattr__(self, "loss_options", tuple(sorted(options.items())))
        self._check_loss_fits_output()

    @property
    def loss_kwargs(self) -> dict:
        """The loss's options as keyword arguments (``{"delta": 1.0}`` for huber)."""
        return dict(self.loss_options)

    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1][1]

    @property
    def output_activation(self) -> str:
        return layer_activation(self.layers[-1]) or "linear"

    @property
    def output_alpha(self) -> float | None:
        """The ``alpha`` of the output activation (a leaky_relu's or elu's), None if it takes none."""
        return activation_alpha(self.layers[-1])

    def _check_loss_fits_output(self) -> None:
        out, act = self.output_shape, self.output_activation
        per_timestep = len(out) == 2 and self.loss == "categorical_crossentropy"
        if len(out) != 1 and not per_timestep:
            raise InputError(f"the last layer's output must be 1-D (or (time, classes) for categorical_crossentropy "
                             f"over every timestep), got {format_shape(out)}", field="loss")
        if self.loss == "binary_crossentropy" and (out != (1,) or act != "sigmoid"):
            raise InputError(f"binary_crossentropy needs a last layer of 1 unit with sigmoid activation, "
                             f"got {out[0]} units with {act}", field="loss")
        if self.loss in ("mae", "huber") and act == "softmax":
            raise InputError(f"{self.loss} compares the last layer's values with float targets; a softmax makes "
                             "them probabilities: use a linear (or sigmoid, tanh) output", field="loss")
        if self.loss == "categorical_crossentropy" and (out[-1] < 2 or act != "softmax"):
            raise InputError(f"categorical_crossentropy needs a last layer of at least 2 units with "
                             f"softmax activation, got {out[-1]} units with {act}", field="loss")

    def logit_layers(self) -> tuple:
        """The layers that produce the logits ``z``: all of them, with the last
        layer's activation left out (it is applied by the loss and by predictions)."""
        last = self.layers[-1]
        if isinstance(last, Activation):
            return self.layers[:-1]
        if layer_activation(last) not in (None, "linear"):
            return self.layers[:-1] + (replace(last, activation="linear"),)
        return self.layers

    def param_shapes(self) -> list[dict[str, Shape]]:
        """Per layer, the canonical shape of each parameter (Dense kernel: (in, out))."""
        return [layer.param_shapes(in_shape) for layer, (in_shape, _) in zip(self.layers, self.shapes)]

    @property
    def n_params(self) -> int:
        """Parameters the optimizer updates (moving statistics excluded)."""
        return sum(math.prod(s) for shapes in self.param_shapes() for name, s in shapes.items()
                   if is_trained(name))

    @property
    def has_dropout(self) -> bool:
        """Whether any dropout layer, top-level or inside a residual block, drops anything."""
        return any(isinstance(layer, Dropout) and layer.rate > 0 for layer in nested_layers(self.layers))


@dataclass(frozen=True)
class Sequential:
    """Keras-like front end: ``Sequential([...]).compile(loss=..., optimizer=...)``."""

    layers: list
    input_shape: Shape | None = None

    def compile(self, loss: str | dict, optimizer="adam") -> ModelSpec:
        """``loss``: a name, or a table with its options (``{"name": "huber", "delta": 0.5}``)."""
        input_shape = self.input_shape or (self.layers[0].input_shape if self.layers else None)
        if input_shape is None:
            raise InputError("give input_shape to Sequential or to its first layer", field="input_shape")
        return ModelSpec(tuple(input_shape), tuple(self.layers), loss, make_optimizer(optimizer))


# ------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainSpec:
    """How to train: the batch order follows from seed, batch_size, epochs, drop_last."""

    batch_size: int = 32
    epochs: int = 1
    seed: int = 0
    drop_last: bool = False
    max_steps: int | None = None
    target_accuracy: float | None = None

    def __post_init__(self):
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.epochs, "epochs")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"must be a non-negative integer, got {self.seed!r}", field="seed")
        if not isinstance(self.drop_last, bool):
            raise InputError(f"must be true or false, got {self.drop_last!r}", field="drop_last")
        if self.max_steps is not None:
            check_positive_int(self.max_steps, "steps")
        if self.target_accuracy is not None:
            check_number(self.target_accuracy, "target_accuracy", low=0.0, high=1.0, high_open=False)
