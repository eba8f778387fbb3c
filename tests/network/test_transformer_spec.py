"""The Transformer layer specs: shapes, parameters, clear errors, the residual
block's flattened parameter names, and TOML scenarios with nested layers."""

import tomllib

import numpy as np
import pytest

from dlbench.errors import InputError
from dlbench.scenario import dumps, parse_scenario, resolve_scenario, scenario_document
from dlbench.network import (Conv1D, Dense, GlobalAveragePool1D, LayerNormalization, PositionEmbedding, Residual,
                          SelfAttention, Sequential, is_trained)
from dlbench.network.init import check_weights, initial_weights, load_weights, save_weights

BLOCK = [Residual([LayerNormalization(), SelfAttention(2, 3, causal=True)]),
         Residual([LayerNormalization(), Residual([Conv1D(4, 1, activation="gelu")])])]


def test_attention_parameters_have_the_flat_canonical_layout():
    assert SelfAttention(4, 8).param_shapes((10, 32)) == {
        "query_kernel": (32, 32), "query_bias": (32,), "key_kernel": (32, 32), "key_bias": (32,),
        "value_kernel": (32, 32), "value_bias": (32,), "output_kernel": (32, 32), "output_bias": (32,)}
    assert SelfAttention(3, 5).param_shapes((7, 4))["output_kernel"] == (15, 4)


def test_residual_parameters_are_its_inner_layers_under_their_index():
    spec = Sequential([GlobalAveragePool1D(), Residual([Dense(6, "gelu"), Residual([Dense(6)]), Dense(4)]),
                       Dense(2, "softmax")], input_shape=(3, 4)).compile("categorical_crossentropy")
    assert list(spec.param_shapes()[1]) == ["0.kernel", "0.bias", "1.0.kernel", "1.0.bias", "2.kernel", "2.bias"]
    assert spec.n_params == (4 * 6 + 6) + (6 * 6 + 6) + (6 * 4 + 4) + (4 * 2 + 2)
    assert is_trained("1.0.kernel") and is_trained("3.query_bias") and not is_trained("0.moving_mean")


def test_nested_weights_are_seeded_checked_and_saved_like_top_level_ones(tmp_path):
    spec = Sequential([PositionEmbedding(6), *BLOCK, GlobalAveragePool1D(), Dense(3, "softmax")],
                      input_shape=(5, 4)).compile("categorical_crossentropy")
    weights = initial_weights(spec, 0)
    assert np.all(weights[1]["0.gamma"] == 1) and np.all(weights[1]["1.query_bias"] == 0)
    assert weights[1]["1.query_kernel"].std() > 0 and weights[2]["1.0.kernel"].std() > 0
    assert weights[0]["position_embeddings"].std() > 0
    save_weights(weights, tmp_path / "w.npz")
    for got, expected in zip(load_weights(tmp_path / "w.npz", spec), weights):
        assert got.keys() == expected.keys()
        for name in got:
            np.testing.assert_array_equal(got[name], expected[name])
    del weights[1]["1.key_bias"]
    with pytest.raises(InputError, match=r"weights\[1\].*1.key_bias"):
        check_weights(spec, weights)


@pytest.mark.parametrize("make,message", [
    (lambda: Sequential([Residual([Dense(3)])], input_shape=(4,)).compile("mse"),
     r"layers\[0\].layers: a residual block's layers must give back its input's shape \(4,\).*got \(3,\)"),
    (lambda: Sequential([SelfAttention(2, 2), Dense(1)], input_shape=(4,)).compile("mse"),
     r"layers\[0\]: self_attention needs a 2-D input \(time, features\), got shape \(4,\)"),
    (lambda: Sequential([PositionEmbedding(3), GlobalAveragePool1D(), Dense(1)], input_shape=(4, 2)).compile("mse"),
     r"layers\[0\].max_length: the sequence has 4 positions, more than max_length 3"),
    (lambda: Residual([]), r"layers: must be a non-empty list of layers"),
    (lambda: Residual([{"type": "dense"}]), r"layers\[0\]: must be a layer spec"),
    (lambda: SelfAttention(0, 2), r"num_heads: must be a positive integer"),
    (lambda: SelfAttention(2, 2, causal="yes"), r"causal: must be true or false"),
    (lambda: LayerNormalization(epsilon=-1.0), r"epsilon: must be in"),
])
def test_bad_transformer_layers_name_the_field_and_what_is_wrong(make, message):
    with pytest.raises(InputError, match=message):
        make()


TOML = """
name = "t"
[data]
name = "synthetic"
[model]
input_shape = [5, 4]
layers = [
  { type = "residual", layers = [{ type = "layer_norm", epsilon = 1e-6 }, { type = "self_attention", num_heads = 2, key_dim = 3, causal = true }] },
  { type = "global_average_pool1d" },
  { type = "dense", units = 3, activation = "softmax" },
]
[train]
loss = "categorical_crossentropy"
optimizer = "adam"
"""


def test_a_toml_residual_block_reads_and_writes_back_as_the_same_layers():
    scenario = parse_scenario(tomllib.loads(TOML), "t")
    block = scenario.model.layers[0]
    assert block == Residual([LayerNormalization(1e-6), SelfAttention(2, 3, causal=True)])
    again = parse_scenario(tomllib.loads(dumps(scenario_document(scenario))), "t")
    assert again.model == scenario.model


def test_a_bad_inner_layer_of_a_toml_block_is_named_by_its_path():
    bad = TOML.replace('"self_attention", num_heads = 2', '"self_attention", num_heads = 0')
    with pytest.raises(InputError, match=r"model.layers\[0\].layers\[1\].num_heads: must be a positive integer"):
        parse_scenario(tomllib.loads(bad), "t")
    unknown = TOML.replace('type = "layer_norm"', 'type = "layernorm"')
    with pytest.raises(InputError, match=r"model.layers\[0\].layers\[0\].type: unknown 'layernorm'"):
        parse_scenario(tomllib.loads(unknown), "t")


def test_the_encoder_scenario_is_two_pre_norm_blocks_of_four_heads():
    model = resolve_scenario("mnist1d-transformer").model
    blocks = [layer for layer in model.layers if isinstance(layer, Residual)]
    assert len(blocks) == 4
    assert [type(inner) for inner in blocks[0].layers] == [LayerNormalization, SelfAttention]
    assert blocks[0].layers[1].num_heads == 4 and blocks[0].layers[0].epsilon == 1e-5


def test_a_dropout_inside_a_residual_block_makes_the_network_stochastic_and_the_certificate_removes_it():
    from dlbench.parity.certificate import without_dropout
    from dlbench.network import Dense, Dropout, Residual, Sequential

    spec = Sequential([Dense(4, input_shape=(4,)), Residual([Dense(4), Residual([Dropout(0.3)])]),
                       Dense(2, "softmax")]).compile("categorical_crossentropy", "sgd")
    assert spec.has_dropout
    plain = without_dropout(spec)
    assert not plain.has_dropout
    assert plain.layers[1].layers[1].layers[0] == Dropout(0.0)
    assert plain.shapes == spec.shapes
