"""FLOP counts of the Transformer layers against hand counts (formulas in dlbench.network.flops)."""

from dlbench.network import (SGD, Dense, GlobalAveragePool1D, LayerNormalization, PositionEmbedding, Residual,
                          SelfAttention, Sequential)
from dlbench.network.flops import training_step_flops

B, T, D = 3, 5, 4


def _step(*layers) -> int:
    spec = Sequential([*layers, GlobalAveragePool1D(), Dense(2, "softmax")], input_shape=(T, D)).compile(
        "categorical_crossentropy", SGD(0.1))
    return training_step_flops(spec, B)


def _head() -> int:
    pool = 2 * B * T * D
    dense = (2 * B * D * 2 + B * 2) + (2 * B * D * 2 + B * 2 + 2 * B * D * 2)
    return pool + dense + 6 * B * 2 + 2 * (D * 2 + 2)


def test_layer_norm_and_position_embedding_count_by_hand():
    n = B * T * D
    assert _step(LayerNormalization()) == _head() + 20 * n + 2 * 2 * D
    assert _step(PositionEmbedding(7)) == _head() + 2 * n + 2 * 7 * D


def test_attention_counts_projections_scores_and_softmax_by_hand():
    h, k = 2, 3
    i, n = h * k, B * T
    qkv_first = 3 * ((2 * n * D * i + n * i) + (2 * n * D * i + n * i))  # forward + dW/db, no dX (first layer)
    output = (2 * n * i * D + n * D) + (2 * n * i * D + n * D + 2 * n * i * D)
    scores = B * h * T * T
    attention = 2 * (2 * scores * k) + 4 * (2 * scores * k) + 5 * scores + 5 * scores
    update = 2 * (3 * (D * i + i) + i * D + D)
    expected = qkv_first + output + attention + update
    assert _step(SelfAttention(h, k, causal=True)) == _head() + expected
    # not first: the three input gradients (2 n D i each) and their sum (2 n D)
    after_norm = _step(LayerNormalization(), SelfAttention(h, k))
    assert after_norm == _step(LayerNormalization()) + expected + 3 * 2 * n * D * i + 2 * n * D


def test_residual_counts_its_inner_layers_as_inner_and_the_addition():
    n = B * T * D
    block = _step(Residual([LayerNormalization(), SelfAttention(2, 2)]))
    assert block == _step(LayerNormalization(), SelfAttention(2, 2)) + 2 * n


def test_gelu_counts_12_forward_and_12_backward_per_element():
    spec = Sequential([Dense(3, "gelu", input_shape=(4,)), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    linear = Sequential([Dense(3, input_shape=(4,)), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    assert training_step_flops(spec, 5) - training_step_flops(linear, 5) == 24 * 5 * 3
