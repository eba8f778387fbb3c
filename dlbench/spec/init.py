"""The one source of initial weights and of every other seeded choice.

Every backend receives these arrays and converts them to its own layout;
none draws its own. Canonical layouts: Dense kernel ``(in, out)``.
Kernels are glorot_uniform (``U(+-sqrt(6 / (fan_in + fan_out)))``, fans as
Keras computes them), biases zero: the Keras defaults of the seed example.
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.spec import ModelSpec

# Independent random streams derived from one scenario seed, so that changing
# e.g. the dataset size does not change the initial weights.
STREAM_DATA, STREAM_SPLIT, STREAM_WEIGHTS, STREAM_ORDER, STREAM_BACKEND = 0, 1, 2, 3, 4

Weights = list[dict[str, np.ndarray]]


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel: (in, out) or (*receptive_field, in, out)."""
    receptive_field = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    fan_in, fan_out = fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def initial_weights(spec: ModelSpec, seed: int) -> Weights:
    """Per layer, a dict of float32 parameter arrays in canonical layout."""
    rng = rng_for(seed, STREAM_WEIGHTS)
    weights: Weights = []
    for shapes in spec.param_shapes():
        layer = {}
        for name, shape in shapes.items():
            if name == "kernel":
                layer[name] = glorot_uniform(rng, shape)
            elif name in ("gamma", "moving_variance"):
                layer[name] = np.ones(shape, np.float32)
            else:
                layer[name] = np.zeros(shape, np.float32)
        weights.append(layer)
    return weights
