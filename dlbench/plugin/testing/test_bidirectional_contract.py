"""Bidirectional recurrent layers under every backend: weights of both
directions go in and come out exactly under ``"forward.<name>"`` and
``"backward.<name>"``; every cell, with and without return_sequences, trains
like the NumPy reference."""

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import toy_data
from dlbench.plugin.backend import TrainerOptions
from dlbench.network import SGD, Adam, Dense, GlobalAveragePool1D, Sequential
from dlbench.network.init import initial_weights
from dlbench.network.sequence import GRU, LSTM, Bidirectional, SimpleRNN
from dlbench.plugin.testing.like_numpy import assert_trains_like_numpy

CASES = {
    "lstm-sequences-then-gru": Sequential([Bidirectional(LSTM(4, return_sequences=True), input_shape=(6, 3)),
                                           Bidirectional(GRU(3)), Dense(3, "softmax")])
    .compile("categorical_crossentropy", Adam(0.01)),
    "simple-rnn-sequences-pooled": Sequential([Dense(4, "tanh", input_shape=(6, 3)),
                                               Bidirectional(SimpleRNN(3, return_sequences=True)),
                                               GlobalAveragePool1D(), Dense(3, "softmax")])
    .compile("categorical_crossentropy", SGD(0.1, 0.9)),
}


def test_parameters_are_both_directions_forward_first():
    shapes = CASES["lstm-sequences-then-gru"].param_shapes()
    assert list(shapes[0]) == ["forward.kernel", "forward.recurrent_kernel", "forward.bias",
                               "backward.kernel", "backward.recurrent_kernel", "backward.bias"]
    assert shapes[1]["backward.bias"] == (2, 9) and shapes[1]["forward.kernel"] == (8, 9)
    assert CASES["lstm-sequences-then-gru"].shapes[1][1] == (6,)
    bias = initial_weights(CASES["lstm-sequences-then-gru"], 0)[0]
    assert (bias["forward.bias"][4:8] == 1).all() and (bias["backward.bias"][4:8] == 1).all()  # the forget gates


@pytest.mark.parametrize("case", list(CASES))
def test_weights_go_in_and_come_out_exactly(backend, case):
    spec = CASES[case]
    rng = np.random.default_rng(1)
    weights = [{name: rng.standard_normal(w.shape).astype(np.float32) for name, w in layer.items()}
               for layer in initial_weights(spec, 0)]
    got = backend.build(spec, weights, TrainerOptions()).weights()
    assert [list(layer) for layer in got] == [list(layer) for layer in weights]
    for layer, ref in zip(got, weights):
        for name in layer:
            np.testing.assert_array_equal(layer[name], ref[name], err_msg=name)


@pytest.mark.parametrize("case", list(CASES))
def test_trains_like_numpy(compared_backend, case):
    spec = CASES[case]
    assert_trains_like_numpy(compared_backend.name, spec, toy_data(input_shape=spec.input_shape, n_train=43),
                             steps=12, window_steps=5)
