"""The Transformer layers under every backend (``conftest.py``): weights, nested
ones of residual blocks included, go in and come out exactly in the canonical
layout; every layer and mode trains like the NumPy reference step by step; the
training state of a residual network round-trips."""

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import toy_data
from dlbench.plugin.backend import TrainerOptions
from dlbench.parity.certificate import without_dropout
from dlbench.network import (SGD, Adam, Conv1D, Dense, Dropout, GlobalAveragePool1D, LayerNormalization,
                          PositionEmbedding, Residual, SelfAttention, Sequential)
from dlbench.network.init import initial_weights
from dlbench.plugin.testing.like_numpy import assert_trains_like_numpy, trained

HEAD = [GlobalAveragePool1D(), Dense(3, "softmax")]


def sequence_net(*layers, optimizer=None, input_shape=(6, 4)):
    return Sequential([*layers, *HEAD], input_shape=input_shape).compile("categorical_crossentropy",
                                                                         optimizer or Adam(0.01))


def pre_norm_block(heads: int, key_dim: int, d: int, causal: bool) -> list:
    return [Residual([LayerNormalization(), SelfAttention(heads, key_dim, causal)]),
            Residual([LayerNormalization(), Conv1D(4 * d, 1, activation="gelu"), Conv1D(d, 1)])]


# The key bias adds q.b_k to every score of a query, which the softmax removes:
# its true gradient is 0, so under Adam (m / sqrt(v)) it would follow each
# backend's rounding noise with full learning-rate steps (as a bias before
# BatchNormalization does). Networks with attention train with SGD here.
MOMENTUM = SGD(0.1, 0.9)
TRANSFORMER_CASES = {
    "layer-norm": sequence_net(LayerNormalization(), optimizer=SGD(0.1)),
    "layer-norm-epsilon-0.1": sequence_net(LayerNormalization(epsilon=0.1)),
    "attention": sequence_net(SelfAttention(2, 3), optimizer=SGD(0.1)),
    "attention-causal": sequence_net(SelfAttention(2, 3, causal=True), optimizer=MOMENTUM),
    "attention-key-dim-not-d-over-heads": sequence_net(SelfAttention(3, 5, causal=True), optimizer=MOMENTUM),
    "position-embedding": sequence_net(PositionEmbedding(8), SelfAttention(2, 2), optimizer=MOMENTUM),
    "global-average-pool": sequence_net(),
    "pre-norm-transformer-block": sequence_net(PositionEmbedding(6), *pre_norm_block(2, 2, 4, causal=True),
                                               optimizer=MOMENTUM),
    "encoder-block-after-projection": sequence_net(Conv1D(8, 1), *pre_norm_block(4, 2, 8, causal=False),
                                                   LayerNormalization(), optimizer=MOMENTUM),
    "residual-gelu-on-vectors": Sequential([Dense(6, "relu", input_shape=(5,)),
                                            Residual([Dense(12, "gelu"), Dense(6)]),
                                            Residual([Residual([Dense(6, "gelu")]), LayerNormalization()]),
                                            Dense(3, "softmax")]).compile("categorical_crossentropy", Adam(0.01)),
}


def _data(spec):
    return toy_data(input_shape=spec.input_shape, n_classes=3, n_train=43)


def _distinct_weights(spec, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [{name: rng.standard_normal(w.shape).astype(np.float32) for name, w in layer.items()}
            for layer in initial_weights(spec, 0)]


@pytest.mark.parametrize("case", list(TRANSFORMER_CASES))
def test_transformer_weights_go_in_and_come_out_exactly(backend, case):
    spec = TRANSFORMER_CASES[case]
    weights = _distinct_weights(spec)
    got = backend.build(spec, weights, TrainerOptions()).weights()
    assert [list(layer) for layer in got] == [list(layer) for layer in weights]
    for layer, ref in zip(got, weights):
        for name in layer:
            assert layer[name].dtype == np.float32 and layer[name].shape == ref[name].shape, name
            np.testing.assert_array_equal(layer[name], ref[name], err_msg=name)


@pytest.mark.parametrize("case", list(TRANSFORMER_CASES))
def test_transformer_trains_like_numpy(compared_backend, case):
    spec = TRANSFORMER_CASES[case]
    assert_trains_like_numpy(compared_backend.name, spec, _data(spec), steps=15)


def test_nested_parameters_are_in_the_training_state_and_round_trip(backend):
    spec = TRANSFORMER_CASES["pre-norm-transformer-block"]
    data = _data(spec)
    source, _ = trained(backend.name, spec, data, steps=5)
    state = source.state()
    assert set(state.slots[1]) == {"0.gamma", "0.beta", *(f"1.{p}_{k}" for p in ("query", "key", "value", "output")
                                                          for k in ("kernel", "bias"))}
    assert set(state.slots[1]["1.query_kernel"]) == {"velocity"}
    fresh = backend.build(spec, initial_weights(spec, 9), TrainerOptions())
    fresh.place_data(data)
    fresh.load_state(state)
    again = fresh.state()
    assert again.step == state.step
    for ours, theirs in zip(again.weights + [s[p] for s in again.slots for p in s],
                            state.weights + [s[p] for s in state.slots for p in s]):
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    indices = np.arange(16).reshape(2, 8)
    np.testing.assert_array_equal(fresh.train(indices), source.train(indices))


def test_a_dropout_inside_a_residual_block_drops_in_training(backend):
    """Found only at the top level before: JAX drew no key for it (a crash), and
    the run was not marked stochastic nor its dropout removed for the certificate."""
    spec = Sequential([Dense(6, "relu", input_shape=(5,)), Residual([Dense(6, "relu"), Dropout(0.5)]),
                       Dense(3, "softmax")]).compile("categorical_crossentropy", SGD(0.1))
    data = toy_data(input_shape=(5,), n_classes=3, n_train=43)
    _, dropped = trained(backend.name, spec, data, steps=5)
    _, plain = trained(backend.name, without_dropout(spec), data, steps=5)
    assert np.isfinite(dropped).all()
    assert not np.allclose(dropped[0], plain[0])  # the first step's forward pass already drops
