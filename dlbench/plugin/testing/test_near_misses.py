"""Contract cases for slips an audit planted that only slow or marginal tests
caught, each fast and with a margin: the tolerance is at least ten times
below what the slip does, and ten times above what a right implementation
measures.

* fp16's loss scale divided back out of the gradients before the update: one
  SGD step at fp16 moves the weights as the NumPy reference's fp16 step does
  (a scale left in multiplies the update by 32768; Adam hides it, SGD does not);
* LayerNormalization's epsilon inside the square root, ``(x - mean) /
  sqrt(var + eps)``: at inputs whose variance is about epsilon, outside the
  root is 40% off;
* GELU in the spec's tanh form (GPT-2's), not the exact erf form: at |x| near
  2.7 the two differ by 4.7e-4, here judged at 2e-5.
"""

import math

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import require_mode, require_precision
from dlbench.data.base import Dataset
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.network import SGD, Dense, GlobalAveragePool1D, LayerNormalization, Sequential
from dlbench.network.init import initial_weights

#: the GELU check's tolerance; measured: the erf form is off by 4.7e-4 (at |x| = 2.7), every backend by 1.7e-7
GELU_ATOL = 2e-5
GELU_INPUTS = np.array([-4.0, -3.0, -2.7, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 2.7, 3.0], np.float32)
#: the LayerNormalization check's tolerance (relative); measured: epsilon outside the root is off by 0.26,
#: the backends by 4e-6 to 8e-6 (float32 centring inputs of mean 0.5 and spread 3e-3)
LAYERNORM_RTOL = 1e-4
#: one fp16 SGD step against the reference's (relative to the update); measured: the backends 7e-4 to 1.1e-3,
#: TF with the scale left in 3.3e4
FP16_UPDATE_RTOL = 0.03


def dataset(x: np.ndarray, n_classes: int, labels_shape=()) -> Dataset:
    labels = np.random.default_rng(0).integers(0, n_classes, (len(x), *labels_shape))
    return Dataset(x, labels, x, labels, n_classes)


def logits(backend, spec, weights, data: Dataset) -> np.ndarray:
    require_mode(backend, "inference")
    trainer = backend.build(spec, weights, TrainerOptions())
    trainer.place_data(data)
    return np.asarray(trainer.predict(np.arange(len(data.x_test))), np.float64)


def identity_head(units: int) -> dict:
    return {"kernel": np.eye(units, dtype=np.float32), "bias": np.zeros(units, np.float32)}


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def test_gelu_is_the_tanh_form_to_a_tenth_of_its_distance_from_the_erf_form(backend):
    n = len(GELU_INPUTS)
    spec = Sequential([Dense(n, "gelu", input_shape=(n,)), Dense(n, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    x = np.stack([GELU_INPUTS, -GELU_INPUTS[::-1], 0.9 * GELU_INPUTS])
    z = logits(backend, spec, [identity_head(n), identity_head(n)], dataset(x, n))
    erf_form = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))(x.astype(np.float64))
    assert np.abs(erf_form - gelu_tanh(x)).max() >= 10 * GELU_ATOL  # the check tells the two forms apart
    assert np.abs(z - gelu_tanh(x)).max() <= GELU_ATOL, (backend.name, np.abs(z - gelu_tanh(x)).max())


def test_layer_normalization_adds_epsilon_inside_the_root(backend):
    steps, d = 3, 6
    layer = LayerNormalization()
    # pooled over time before the head: torch lays a (time, features) input without a sequence layer out
    # as a signal (channels first), which a Dense per timestep does not take
    spec = Sequential([layer, GlobalAveragePool1D(), Dense(d, "softmax")], input_shape=(steps, d)).compile(
        "categorical_crossentropy", SGD(0.1))
    rng = np.random.default_rng(0)
    # features whose variance is about epsilon, where inside and outside the root differ by 40%
    x = (0.5 + math.sqrt(layer.epsilon) * rng.standard_normal((4, steps, d))).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2.0, d).astype(np.float32), rng.standard_normal(d).astype(np.float32)
    z = logits(backend, spec, [{"gamma": gamma, "beta": beta}, {}, identity_head(d)], dataset(x, d))
    x64 = x.astype(np.float64)
    centred = x64 - x64.mean(-1, keepdims=True)
    var = (centred ** 2).mean(-1, keepdims=True)
    inside = (centred / np.sqrt(var + layer.epsilon) * gamma + beta).mean(1)
    outside = (centred / (np.sqrt(var) + layer.epsilon) * gamma + beta).mean(1)

    def off(ours):
        return float(np.abs(ours - inside).max() / np.abs(inside).max())

    assert off(outside) >= 10 * LAYERNORM_RTOL  # the check tells the two apart
    assert off(z) <= LAYERNORM_RTOL, (backend.name, off(z))


def one_fp16_sgd_step(backend, spec, data: Dataset) -> list[dict]:
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions(precision="fp16"))
    trainer.place_data(data)
    trainer.train(np.arange(8)[None, :])
    return trainer.weights()


def test_an_fp16_step_updates_with_the_gradient_the_loss_scale_was_divided_out_of(compared_backend,
                                                                                 restore_process_settings):
    require_precision(compared_backend, "fp16")
    spec = Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.5))
    data = dataset(np.random.default_rng(1).standard_normal((16, 5)).astype(np.float32), 3)
    start = initial_weights(spec, 0)
    ours = one_fp16_sgd_step(compared_backend, spec, data)
    reference = one_fp16_sgd_step(get_plugins().backend("numpy"), spec, data)
    for i, layer in enumerate(start):
        for name, w0 in layer.items():
            update, expected = ours[i][name] - w0, reference[i][name] - w0
            off = float(np.abs(update - expected).max() / np.abs(expected).max())
            assert off <= FP16_UPDATE_RTOL, (compared_backend.name, f"layers[{i}].{name}", off)
