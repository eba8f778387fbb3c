"""The NumPy reference's per-step fast path changes no number (issue 36).

At fp32 the plain arithmetic calls NumPy's own matmul and sums at once, and
a step skips the checks that only mixed precision and the certificate's twins
need. Here: that computes bit for bit what the general code computes; a
training step is bit for bit a textbook step written out below, at batch 1
(the seed's) and at a larger batch; whole trainings (dense, conv with batch
norm, recurrent, attention) match the general code's exactly; and a batch-1
step costs few Python calls beyond a hand-written loop's."""

import sys
from pathlib import Path

import numpy as np
import pytest

from backend_helpers import toy_data
from dlbench.network import (SGD, Adam, BatchNormalization, Conv1D, Conv2D, Dense, Flatten, GlobalAveragePool1D,
                             LayerNormalization, MaxPool2D, PositionEmbedding, Residual, SelfAttention, Sequential)
from dlbench.network.init import initial_weights
from dlbench.plugin.backend import TrainerOptions
from dlbench_backends.numpy import NumpyBackend
from dlbench_backends.numpy.precision import Arithmetic
from dlbench_backends.numpy.trainer import NumpyTrainer

sys.path.insert(0, str(Path(__file__).parent / "backends"))
from dlbench.plugin.testing.sequence_networks import RECURRENT_CASES  # noqa: E402

SEED_MLP = Sequential([Dense(10, "relu", input_shape=(64,)), Dense(10, "softmax")]).compile(
    "categorical_crossentropy", SGD(0.1))


def general(arith: Arithmetic) -> Arithmetic:
    """``arith`` (plain) through the general code of its methods (their checks, np.sum), not NumPy's at once."""
    arith.is_plain = False
    return arith


def test_plain_arithmetic_computes_what_its_general_code_computes():
    plain, slow = Arithmetic(), general(Arithmetic())
    assert plain.is_plain
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        a, b = rng.standard_normal((3, 5, 7)).astype(dtype), rng.standard_normal((7, 4)).astype(dtype)
        np.testing.assert_array_equal(plain.matmul(a, b), slow.matmul(a, b))
        out, slow_out = np.empty((7, 4), dtype), np.empty((7, 4), dtype)
        plain.matmul(a[0].T, a[0] @ b, out=out)
        slow.matmul(a[0].T, a[0] @ b, out=slow_out)
        np.testing.assert_array_equal(out, slow_out)
        for axis in (0, 1, -1, (0, 1), (0, 2)):
            for keepdims in (False, True):
                np.testing.assert_array_equal(plain.sum(a, axis, keepdims=keepdims),
                                              slow.sum(a, axis, keepdims=keepdims))
        np.testing.assert_array_equal(plain.bias_grad(a[0]), slow.bias_grad(a[0]))
    assert not Arithmetic("bfloat16").is_plain and not Arithmetic(reverse=True).is_plain
    assert not Arithmetic(blocks=4).is_plain and not Arithmetic("tfloat32").is_plain


def test_a_subclass_of_the_plain_arithmetic_keeps_its_own_methods():
    """The certificate's mutants override a plain Arithmetic's methods (tests/mutant_plugins.py)."""
    class HalvedBiasGradient(Arithmetic):
        def bias_grad(self, dz):
            return super().bias_grad(dz) / 2

    np.testing.assert_array_equal(HalvedBiasGradient().bias_grad(np.ones((4, 3), np.float32)), np.full(3, 2.0))


def textbook_sgd_steps(weights, x_train, labels, windows, lr=0.1):
    """z1 = x W1 + b1, h = relu(z1), z = h W2 + b2, E = mean(logsumexp(z) - z[label]),
    then backpropagation and W <- W - lr dE/dW, each written out in float32."""
    (w1, b1), (w2, b2) = [(layer["kernel"].copy(), layer["bias"].copy()) for layer in weights]
    losses = []
    for rows in (rows for window in windows for rows in window):
        x, y = x_train[rows], labels[rows]
        n = len(rows)
        h = np.maximum(x @ w1 + b1, 0)
        z = h @ w2 + b2
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        losses.append(np.mean(np.log(s[:, 0]) - z[np.arange(n), y]))
        dz = e / s
        dz[np.arange(n), y] -= 1
        dz /= n
        dh = (dz @ w2.T) * (h > 0)
        for p, g in zip((w1, b1, w2, b2), (x.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0))):
            p -= lr * g
    return np.array(losses), [{"kernel": w1, "bias": b1}, {"kernel": w2, "bias": b2}]


def built(spec, data) -> NumpyTrainer:
    trainer = NumpyBackend().build(spec, initial_weights(spec, 0), TrainerOptions())  # its options filled
    trainer.place_data(data)
    return trainer


@pytest.mark.parametrize("batch", [1, 8])
def test_a_numpy_step_is_bit_for_bit_the_textbook_step(batch):
    data = toy_data(input_shape=(64,), n_classes=10, n_train=48)
    windows = [np.arange(k, k + 3 * batch).reshape(3, batch) for k in (0, 3 * batch)]
    trainer = built(SEED_MLP, data)
    losses = np.concatenate([trainer.train(window) for window in windows])
    expected_losses, expected_weights = textbook_sgd_steps(initial_weights(SEED_MLP, 0), trainer.x_train,
                                                           data.y_train, windows)
    np.testing.assert_array_equal(losses, expected_losses)
    for ours, theirs in zip(trainer.weights(), expected_weights):
        for name in theirs:
            np.testing.assert_array_equal(ours[name], theirs[name])


SPEC_CASES = {
    "seed-mlp-sgd": (SEED_MLP, toy_data(input_shape=(64,), n_classes=10, n_train=24)),
    "conv-batchnorm-pool-adam": (
        Sequential([Conv2D(3, 2, activation="relu", input_shape=(5, 5, 2)), BatchNormalization(0.9, 1e-3),
                    MaxPool2D(2), Flatten(), Dense(3, "softmax")]).compile("categorical_crossentropy", Adam(0.01)),
        toy_data(input_shape=(5, 5, 2), n_classes=3, n_train=24)),
    "momentum-mse": (Sequential([Dense(6, "tanh", input_shape=(5,)), Dense(3, "sigmoid")]).compile("mse", SGD(0.1, 0.9)),
                     toy_data(input_shape=(5,), n_classes=3, n_train=24)),
    "lstm-language-model": RECURRENT_CASES["lstm-sequences-lm"],
    "pre-norm-transformer-block": (
        Sequential([PositionEmbedding(6), Residual([LayerNormalization(), SelfAttention(2, 2, causal=True)]),
                    Residual([LayerNormalization(), Conv1D(16, 1, activation="gelu"), Conv1D(4, 1)]),
                    GlobalAveragePool1D(), Dense(3, "softmax")], input_shape=(6, 4))
        .compile("categorical_crossentropy", SGD(0.1, 0.9)),
        toy_data(input_shape=(6, 4), n_classes=3, n_train=24)),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_numpy_training_on_the_fast_path_is_bit_for_bit_the_general_path(case):
    spec, data = SPEC_CASES[case]
    windows = [np.arange(k, k + 6).reshape(3, 2) for k in (0, 6)]
    fast, slow = built(spec, data), built(spec, data)
    general(slow.net.arith)  # every layer holds the network's arithmetic
    assert fast.net.arith.is_plain
    np.testing.assert_array_equal([fast.train(window) for window in windows],
                                  [slow.train(window) for window in windows])
    for ours, theirs in zip(fast.weights(), slow.weights()):
        for name in theirs:
            np.testing.assert_array_equal(ours[name], theirs[name])
    np.testing.assert_array_equal(fast.evaluate(), slow.evaluate())


def python_calls(fn, *args) -> int:
    """Python and builtin function calls made while ``fn(*args)`` runs."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        count += event in ("call", "c_call")

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return count


def test_a_batch_1_step_makes_few_python_calls_beyond_a_hand_written_loops():
    """At batch 1 a step's time is its calls (the arithmetic is a few thousand
    flops), so the harness may add little to the hand-written loop's: it makes
    6 more a step (its layers' forward and backward, the update; it skips
    np.mean's wrappers), 46 more before the fast path, when it ran at 0.84x
    the loop's samples/s (tests/benchmarks/overhead.py --network tiny)."""
    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    from handwritten_numpy import make_loop

    data = toy_data(input_shape=(64,), n_classes=10, n_train=64)
    trainer = built(SEED_MLP, data)
    handwritten = make_loop("tiny", initial_weights(SEED_MLP, 0), trainer.x_train, data.y_train)
    window = np.arange(50).reshape(50, 1)
    trainer.train(window[:1])  # first calls import and cache what they need
    handwritten(window[:1])
    ours, theirs = python_calls(trainer.train, window), python_calls(handwritten, window)
    assert (ours - theirs) / len(window) <= 10, (ours / len(window), theirs / len(window))
