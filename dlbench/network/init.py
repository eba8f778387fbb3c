"""The one source of initial weights and of every other seeded choice.

Every backend receives these arrays and converts them to its own layout;
none draws its own. Canonical layouts: Dense kernel ``(in, out)``.
Kernels are glorot_uniform (``U(+-sqrt(6 / (fan_in + fan_out)))``, fans as
Keras computes them), biases zero: the Keras defaults of the seed example.

Sequence layers (Keras's defaults too, see :mod:`dlbench.network.sequence`):
embeddings ``U(-0.05, 0.05)``; a recurrent layer's ``kernel`` glorot_uniform
over its whole ``(features, k*units)``, its ``recurrent_kernel`` orthogonal
(:func:`orthogonal`, Keras's Orthogonal with gain 1), its bias zero but an
LSTM's forget-gate slice ``bias[units:2*units]``, which is 1
(``unit_forget_bias=True``). Every array is drawn from the weights stream
in layer order, parameter by parameter.
The attention projections (``query_kernel``, ...) and position embeddings are
glorot-uniform too, over their 2-D shapes; a residual block's inner
parameters (``"<j>.<name>"``, then its shortcut's ``"shortcut.<k>.<name>"``)
are drawn like top-level ones, in its order.
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.errors import InputError
from dlbench.network import ModelSpec

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


def orthogonal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Keras's Orthogonal initializer (gain 1): the Q of the QR decomposition
    of a standard normal (max(r, c), min(r, c)) matrix, its columns' signs
    made those of R's diagonal, transposed when there are fewer rows r than
    columns c; so the rows (r <= c) or the columns are orthonormal."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return (q.T if rows < cols else q).astype(np.float32)


def initial_parameter(layer, name: str, shape, rng: np.random.Generator) -> np.ndarray:
    """One parameter's initial value (see the module notes)."""
    from dlbench.network.sequence import EMBEDDING_INIT_RANGE, LSTM, Bidirectional
    from dlbench.network.transformer import Residual

    if isinstance(layer, (Residual, Bidirectional)):  # "<j>.<name>", "shortcut.<k>.<name>", "forward.<name>" ...
        return initial_parameter(*layer.part(name), shape, rng)  # that inner layer's own rule
    if name == "recurrent_kernel":
        return orthogonal(rng, shape)
    if name == "kernel" or name.endswith("_kernel") or name == "position_embeddings":  # attention projections
        return glorot_uniform(rng, shape)
    if name == "embeddings":
        return rng.uniform(-EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE, size=shape).astype(np.float32)
    if name in ("gamma", "moving_variance"):
        return np.ones(shape, np.float32)
    value = np.zeros(shape, np.float32)
    if name == "bias" and isinstance(layer, LSTM):
        value[layer.units:2 * layer.units] = 1.0  # unit_forget_bias: the forget gate starts open
    return value


def initial_weights(spec: ModelSpec, seed: int) -> Weights:
    """Per layer, a dict of float32 parameter arrays in canonical layout."""
    rng = rng_for(seed, STREAM_WEIGHTS)
    return [{name: initial_parameter(layer, name, shape, rng) for name, shape in shapes.items()}
            for layer, shapes in zip(spec.layers, spec.param_shapes())]


def check_weights(spec: ModelSpec, weights) -> Weights:
    """``weights`` as float32 arrays, checked against the canonical layout of
    ``spec`` (one dict per layer, every parameter with its canonical shape):
    given weights replace the core's initialisation, so they must fit exactly."""
    expected = spec.param_shapes()
    if not isinstance(weights, (list, tuple)) or len(weights) != len(expected):
        count = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
        raise InputError(f"expected a list of {len(expected)} dicts (one per layer), got {count}", field="weights")
    checked: Weights = []
    for i, (given, shapes) in enumerate(zip(weights, expected)):
        if not isinstance(given, dict) or set(given) != set(shapes):
            names = sorted(given) if isinstance(given, dict) else type(given).__name__
            raise InputError(f"layer {i} ({spec.layers[i].type}) has parameters {sorted(shapes)}, got {names}",
                             field=f"weights[{i}]")
        layer = {}
        for name, shape in shapes.items():
            array = np.asarray(given[name])
            if array.shape != tuple(shape) or not np.issubdtype(array.dtype, np.floating):
                raise InputError(f"{name} must be a float array of shape {tuple(shape)} (canonical layout), got "
                                 f"{array.dtype} {array.shape}", field=f"weights[{i}].{name}")
            layer[name] = np.ascontiguousarray(array, np.float32)
        checked.append(layer)
    return checked


def save_weights(weights: Weights, path) -> None:
    """``weights`` as a .npz file, one array per ``<layer>.<parameter>``."""
    arrays = {f"{i}.{name}": array for i, layer in enumerate(weights) for name, array in layer.items()}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_weights(path, spec: ModelSpec) -> Weights:
    """The weights :func:`save_weights` wrote, checked against ``spec``."""
    weights: Weights = [{} for _ in spec.layers]
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(weights):
                raise InputError(f"unexpected array {key!r}; expected <layer>.<parameter> for "
                                 f"{len(weights)} layers", source=str(path))
            weights[int(index)][name] = archive[key]
    return check_weights(spec, weights)
