"""The canonical weights of the ResNet-20 benchmark network (``resnet20-cifar``),
read per part for the hand-written loops: the stem (3x3 conv, BatchNorm), nine
basic blocks (two 3x3 convs and BatchNorms, a projection shortcut where the
filters change) and the classifier. BatchNorm as (gamma, beta, moving_mean,
moving_variance); kernels in the canonical (kh, kw, in, out) layout."""

from __future__ import annotations

BATCHNORM = ("gamma", "beta", "moving_mean", "moving_variance")


def _norm(layer: dict, prefix: str = "") -> tuple:
    return tuple(layer[prefix + name] for name in BATCHNORM)


def _block(layer: dict) -> dict:
    kernel = layer["0.kernel"]
    shortcut = None
    if "shortcut.0.kernel" in layer:
        shortcut = (layer["shortcut.0.kernel"], _norm(layer, "shortcut.1."))
    return {"conv1": kernel, "norm1": _norm(layer, "1."), "conv2": layer["3.kernel"], "norm2": _norm(layer, "4."),
            "shortcut": shortcut, "stride": 2 if shortcut else 1}


def parts(weights: list) -> dict:
    """{"stem": (kernel, norm), "blocks": [{conv1, norm1, conv2, norm2, shortcut, stride}], "classifier": (W, b)}."""
    return {"stem": (weights[0]["kernel"], _norm(weights[1])),
            "blocks": [_block(layer) for layer in weights[3:-2:2]],
            "classifier": (weights[-1]["kernel"], weights[-1]["bias"])}


def batchnorm_settings(scenario) -> tuple[float, float]:
    """(momentum of the old moving statistics, epsilon) of the network's BatchNorms."""
    norm = scenario.model.layers[1]
    return norm.momentum, norm.epsilon


def sgd_recipe(scenario) -> dict:
    """The network's SGD as the hand-written loops build it from their framework's own pieces:
    ``learning_rate``, ``momentum``, ``weight_decay`` (coupled L2, torch's ``weight_decay``) and the
    cosine schedule's ``decay_steps`` and ``alpha`` (``decay_steps`` None: a constant learning rate)."""
    sgd = scenario.model.optimizer
    schedule = sgd.schedule
    if schedule is not None and schedule.name != "cosine":
        raise ValueError(f"the hand-written ResNet-20 loops follow a cosine schedule, not {schedule.name!r}")
    return {"learning_rate": sgd.learning_rate, "momentum": sgd.momentum,
            "weight_decay": sgd.weight_decay,
            "decay_steps": schedule.decay_steps if schedule else None, "alpha": schedule.alpha if schedule else 0.0}
