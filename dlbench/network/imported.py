"""A model a user already has, read into a spec: what a backend's model
reader returns (``Backend.import_model``), and the framework-free pieces the
readers share. A reader converts all of a model or none of it: what it cannot express
raises one InputError naming every such layer (its index, name, class, why)
and what is supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlbench.errors import InputError
from dlbench.network.model import ModelSpec

#: a loss on logits (torch's CrossEntropyLoss, Keras's from_logits=True) is
#: dlbench's loss after the output activation it implies
LOGIT_OUTPUTS = {"categorical_crossentropy": "softmax", "binary_crossentropy": "sigmoid"}


@dataclass(frozen=True)
class ImportedModel:
    """A framework's model as a spec: ``weights`` are its current parameters
    (and moving statistics) in the canonical layout, one dict per spec layer,
    so a run can start every backend from them."""

    spec: ModelSpec
    weights: list
    name: str  # a scenario name for it, e.g. "keras-xor"
    description: str  # what it was, e.g. "Keras Sequential 'xor' (2 layers)"
    #: whether the model takes its samples channels-first (torch's NCHW images, (C, L) signals), so that
    #: ``dlbench.benchmark`` moves the data's channels last; a torch sequence model takes (N, L, C) as the spec does
    channels_first: bool = False


def all_problems(problems: list[tuple[str, tuple]], common: tuple) -> InputError:
    """The one error of a model reader that found ``problems`` ((what is wrong with which layer, what
    would do) each): all of them at once, the long list ``common`` of what is supported said once."""
    if len(problems) == 1:
        return InputError(problem_text_of(*problems[0]), field="model")
    shared = any(supported == tuple(common) for _, supported in problems)
    listed = " ".join(f"[{k}] " + (f"{text}; supported: see the list below" if supported == tuple(common)
                                   else problem_text_of(text, supported)) + "."
                      for k, (text, supported) in enumerate(problems, 1))
    tail = f" Supported: {', '.join(common)}." if shared else ""
    return InputError(f"{len(problems)} parts of the model cannot be read: {listed}{tail}", field="model")


def problem_text_of(text: str, supported) -> str:
    return f"{text}; supported: {', '.join(supported)}"


def literal(value) -> float:
    """A hyper-parameter a framework keeps in float32, as the decimal the user
    wrote: ``0.0010000000474974513`` -> ``0.001`` (the shortest decimal that is the same float32)."""
    return float(str(np.float32(value)))
