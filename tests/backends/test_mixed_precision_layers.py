"""The NumPy reference's mixed precision on every layer kind: every
matmul-like product (dense, convolution, the recurrent step's h U and the
input projection, attention's projections, Q K^T and P V, and each of their
backward products) rounds its operands at bf16 and fp16.

A product that bypasses the rounding (``q @ k.T`` instead of
``arith.matmul(q, k.T)``) still trains, and every framework still agrees
with the reference within that precision's tolerance, so no parity test
sees it; the published bf16/fp16 verdicts and tolerances would be judged
against a reference that computes something else. The test: an
:class:`Arithmetic` that rounds like the precision and then doubles
(``round(x) = 2 R(x)``), so that every product that goes through it is 4
times what it would be. A network built with it is the reference network at
that precision with every parameter scaled by what the products it feeds
multiply it by (a kernel 4x; attention's key and value projections 16x and
their biases 4x, since their products carry one factor 4 more): the same
logits and loss, and gradients that are the scale times the reference's.
Powers of two commute with rounding, so that holds to the last bit but for
float16's subnormals; a product that bypasses the rounding is off by a
factor of 4 and moves the logits or a gradient by 75% or more.
Embedding lookups, LayerNormalization and pooling multiply nothing by a
weight matrix and are not rounded (the next product rounds their output).
"""

import ml_dtypes
import numpy as np
import pytest

from dlbench.plugin.helpers import loss_targets
from dlbench.network import (GRU, LSTM, SGD, Adam, Conv1D, Conv2D, Dense, Embedding, Flatten, GlobalAveragePool1D,
                          LayerNormalization, MaxPool1D, PositionEmbedding, Residual, SelfAttention, Sequential,
                          SimpleRNN)
from dlbench.network.init import initial_weights
from dlbench_backends.numpy.network import build_network
from dlbench_backends.numpy.precision import Arithmetic

PRECISIONS = {"bf16": "bfloat16", "fp16": "float16"}
#: the factor each parameter's products multiply it by, under a doubling rounding; 1 for the rest
SCALES = {"kernel": 4.0, "recurrent_kernel": 4.0, "query_kernel": 4.0, "output_kernel": 4.0,
          "key_kernel": 16.0, "value_kernel": 16.0, "key_bias": 4.0, "value_bias": 4.0}
#: the agreement asked (norm-wise, relative); measured: 0 (bit for bit) on every case, the slack is for
#: float16 subnormals a gradient might reach
TOLERANCE = 1e-6
#: the least a bypassed product moves some logit, loss or gradient (measured, one product bypassed at a time:
#: 0.75 for a dense, conv or attention product, forward or backward, 1 to 2.8 for Q K^T and h U)
BYPASS_EFFECT = 0.5
LENGTH, VOCAB = 6, 7


def classifier(*layers, input_shape):
    return Sequential([*layers, Dense(3, "softmax")], input_shape=input_shape).compile(
        "categorical_crossentropy", Adam(0.01))


def lm(*layers):
    return Sequential([Embedding(VOCAB, 4, input_shape=(LENGTH,)), *layers, Dense(VOCAB, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))


#: one network per layer kind (each product of the layer between other layers' products)
LAYERS = {
    "dense": classifier(Dense(8, "tanh"), Dense(6, "relu"), input_shape=(5,)),
    "conv2d": classifier(Conv2D(3, 3, padding="same", activation="relu"), Flatten(), input_shape=(5, 5, 2)),
    "conv1d": classifier(Conv1D(4, 3, activation="tanh"), MaxPool1D(2), Flatten(), input_shape=(LENGTH, 3)),
    "simple_rnn": classifier(SimpleRNN(5, return_sequences=True), SimpleRNN(4), input_shape=(LENGTH, 3)),
    "lstm": classifier(LSTM(5), input_shape=(LENGTH, 3)),
    "gru": classifier(GRU(5), input_shape=(LENGTH, 3)),
    "attention": classifier(SelfAttention(2, 3), GlobalAveragePool1D(), input_shape=(LENGTH, 4)),
    "causal-attention-block": lm(PositionEmbedding(LENGTH), Residual([LayerNormalization(), SelfAttention(2, 2, True)]),
                                 Residual([LayerNormalization(), Conv1D(8, 1, activation="gelu"), Conv1D(4, 1)])),
    "embedding-recurrent-lm": lm(GRU(5, return_sequences=True)),
}


class Doubling(Arithmetic):
    """The precision's operand rounding, then times two: a product through ``matmul`` is 4 R(a) R(b)."""

    def round(self, x: np.ndarray) -> np.ndarray:
        return super().round(x) * x.dtype.type(2)


def scale_of(name: str) -> float:
    return SCALES.get(name.rsplit(".", 1)[-1], 1.0)  # a residual block's inner parameters are "<j>.<name>"


def scaled(weights: list[dict]) -> list[dict]:
    return [{name: w * np.float32(scale_of(name)) for name, w in layer.items()} for layer in weights]


def batch(spec, n: int = 6):
    rng = np.random.default_rng(1)
    if isinstance(spec.layers[0], Embedding):
        x = rng.integers(0, VOCAB, (n, LENGTH))
        labels = rng.integers(0, VOCAB, (n, LENGTH))
    else:
        x = rng.standard_normal((n, *spec.input_shape)).astype(np.float32)
        labels = rng.integers(0, 3, n)
    targets = loss_targets(spec, labels)
    return x, targets if targets.dtype.kind == "i" else targets.astype(np.float32)


def forward_and_backward(spec, weights, arith: Arithmetic, loss_scale: float):
    """(logits, loss, gradients per layer) of one step of the NumPy network built with ``arith``."""
    net = build_network(spec, weights, arith=arith)
    x, targets = batch(spec)
    logits = net.logits(x).astype(np.float64)
    loss = net.loss_and_gradients(x, targets, loss_scale)
    return logits, loss, [{k: v.astype(np.float64) for k, v in layer.items()} for layer in net.per_layer(net.grad)]


def relative(ours: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(ours - expected).max() / max(np.abs(expected).max(), 1e-30))


def worst_mismatch(spec, precision: str) -> tuple[float, str]:
    """The largest relative difference between the doubling network and the scaled reference, and where."""
    dtype = PRECISIONS[precision]
    weights = initial_weights(spec, 0)
    loss_scale = 1024.0 if precision == "fp16" else 1.0  # gradients clear of float16's subnormals, as fp16 trains
    doubled = forward_and_backward(spec, weights, Doubling(dtype), loss_scale)
    reference = forward_and_backward(spec, scaled(weights), Arithmetic(dtype), loss_scale)
    found = [(relative(doubled[0], reference[0]), "logits"), (abs(doubled[1] - reference[1]) / reference[1], "loss")]
    for i, (ours, theirs) in enumerate(zip(doubled[2], reference[2])):
        found += [(relative(ours[name], scale_of(name) * theirs[name]), f"layers[{i}].{name}") for name in ours]
    return max(found)


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("layer", list(LAYERS))
def test_every_product_of_every_layer_kind_rounds_its_operands(layer, precision):
    assert TOLERANCE * 10 <= BYPASS_EFFECT
    difference, where = worst_mismatch(LAYERS[layer], precision)
    assert difference <= TOLERANCE, f"{layer} at {precision}: {where} is off by {difference:.2g} (a product " \
                                    "that does not go through the Arithmetic's rounding)"


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_the_arithmetic_rounds_both_operands_to_the_precision_and_sums_in_float32(precision):
    dtype = np.dtype(getattr(ml_dtypes, PRECISIONS[precision], PRECISIONS[precision]))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4, 33)).astype(np.float32), rng.standard_normal((2, 33, 5)).astype(np.float32)
    rounded = a.astype(dtype).astype(np.float32) @ b.astype(dtype).astype(np.float32)
    product = Arithmetic(PRECISIONS[precision]).matmul(a, b)
    assert product.dtype == np.float32 and np.array_equal(product, rounded)
    eps = float(ml_dtypes.finfo(dtype).eps)
    assert relative(product, a @ b) > eps / 10  # the rounding shows at that precision's scale


def test_a_bypassed_recurrent_product_is_caught_by_tens_of_times_the_tolerance(monkeypatch):
    """The check has teeth: the recurrent step's h U through a plain matmul (a bug an audit planted)."""
    from dlbench_backends.numpy import recurrent

    def unrounded(self, t: int, out: np.ndarray) -> None:
        np.matmul(self.h[t], self.params["recurrent_kernel"], out=out)

    monkeypatch.setattr(recurrent.RecurrentLayer, "_recurrent", unrounded)
    difference, where = worst_mismatch(LAYERS["simple_rnn"], "bf16")
    assert difference >= BYPASS_EFFECT >= 10 * TOLERANCE, (difference, where)


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_the_certificates_twins_store_in_the_precision_what_they_say_and_the_reference_only_its_operands(precision):
    """The yardsticks of the bf16/fp16 verdicts: "results" rounds every matmul result and what flows between
    layers, "outputs" what flows between layers (and bias gradients), the reference ("operands") neither."""
    name = PRECISIONS[precision]
    dtype = np.dtype(getattr(ml_dtypes, name, name))

    def r(x):
        return x.astype(dtype).astype(np.float32)

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 17)).astype(np.float32), rng.standard_normal((17, 4)).astype(np.float32)
    reference, results, outputs = (Arithmetic(name, rounding) for rounding in ("operands", "results", "outputs"))
    assert np.array_equal(results.matmul(a, b), r(r(a) @ r(b)))
    assert np.array_equal(outputs.matmul(a, b), r(a) @ r(b)) and np.array_equal(reference.matmul(a, b), r(a) @ r(b))
    assert not np.array_equal(r(a), a)  # so that a store that rounds shows
    assert np.array_equal(reference.store(a), a)
    assert np.array_equal(results.store(a), r(a)) and np.array_equal(outputs.store(a), r(a))
    assert np.array_equal(reference.bias_grad(a), a.sum(0))
    assert np.array_equal(outputs.bias_grad(a), r(a.sum(0))) and np.array_equal(results.bias_grad(a), r(a.sum(0)))


def test_at_fp32_nothing_rounds_whatever_the_twin_and_the_reversed_twin_sums_backwards():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4, 50)).astype(np.float32), rng.standard_normal((3, 50, 2)).astype(np.float32)
    for rounding in ("operands", "results", "outputs"):
        plain = Arithmetic(None, rounding)
        assert np.array_equal(plain.matmul(a, b), a @ b) and np.array_equal(plain.store(a), a)
        assert np.array_equal(plain.bias_grad(a[0]), a[0].sum(0))
    backwards = Arithmetic(reverse=True)
    assert not np.array_equal(a[..., ::-1].sum(2), a.sum(2))  # float32 sums in the other order differ here
    assert not np.array_equal(a[..., ::-1] @ b[..., ::-1, :], a @ b)
    assert np.array_equal(backwards.matmul(a, b), a[..., ::-1] @ b[..., ::-1, :])
    assert np.array_equal(backwards.sum(a, 2), a[..., ::-1].sum(2))
    assert np.array_equal(backwards.sum(a, (0, 1), keepdims=True), a[::-1, ::-1].sum((0, 1), keepdims=True))
    assert np.array_equal(backwards.sum(a, -1), a[..., ::-1].sum(-1))
    assert np.array_equal(Arithmetic().sum(a, 2), a.sum(2))
