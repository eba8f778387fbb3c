"""A model a user already has, read into a spec: what a backend's model
reader returns (``Backend.import_model``), and the framework-free pieces the
readers share. A reader converts all of a model or none of it: the first
thing it cannot express raises one InputError naming the layer, its index and
what is supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlbench.errors import InputError
from dlbench.spec.model import ModelSpec

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


def unsupported(index, layer_name: str, problem: str, supported) -> InputError:
    """The one error of a model reader: which layer, what about it, what would do."""
    return InputError(f"layer {index} ({layer_name}): {problem}; supported: {', '.join(supported)}", field="model")


def literal(value) -> float:
    """A hyper-parameter a framework keeps in float32, as the decimal the user
    wrote: ``0.0010000000474974513`` -> ``0.001`` (the shortest decimal that is the same float32)."""
    return float(str(np.float32(value)))
