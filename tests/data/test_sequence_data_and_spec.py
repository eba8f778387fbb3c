"""Sequence infrastructure in the core: the embedding and recurrent specs and
their initial weights, the per-timestep dense, FLOP counts by hand, the
sequence datasets (the pydoc corpus, token files, parity) and their checks
against models, and the sequence metrics of a row (tokens/s, perplexity)."""

import math

import numpy as np
import pytest

from dlbench.data.base import DatasetMeta
from dlbench.data.builtin import BUILTIN_DATASETS
from dlbench.data.sequences import CHAR_VOCAB, decode_chars, encode_chars
from dlbench.errors import InputError
from dlbench.plugin.helpers import accuracy
from dlbench.run.worker import sequence_metrics
from dlbench.network import GRU, LSTM, SGD, Dense, Embedding, Flatten, Sequential, SimpleRNN
from dlbench.network.flops import training_step_flops
from dlbench.network.init import initial_weights, orthogonal, rng_for

DATASETS = {info.name: info for info in BUILTIN_DATASETS}


def lm(length=6, vocab=11, dim=4):
    return Sequential([Embedding(vocab, dim, input_shape=(length,)), Dense(vocab, "softmax")]) \
        .compile("categorical_crossentropy", SGD(0.1))


# ------------------------------------------------------------------ spec
def test_embedding_and_per_timestep_dense_shapes_and_parameters():
    spec = lm()
    assert spec.shapes == (((6,), (6, 4)), ((6, 4), (6, 11)))
    assert spec.param_shapes() == [{"embeddings": (11, 4)}, {"kernel": (4, 11), "bias": (11,)}]
    assert spec.n_params == 11 * 4 + 4 * 11 + 11


@pytest.mark.parametrize("layer, k, bias", [(SimpleRNN(5), 1, (5,)), (LSTM(5), 4, (20,)), (GRU(5), 3, (2, 15))])
def test_recurrent_layouts_are_keras(layer, k, bias):
    shapes = layer.param_shapes((7, 3))
    assert shapes == {"kernel": (3, k * 5), "recurrent_kernel": (5, k * 5), "bias": bias}
    assert layer.output_shape((7, 3)) == (5,)
    assert type(layer)(5, return_sequences=True).output_shape((7, 3)) == (7, 5)


def test_sequence_layers_refuse_inputs_of_the_wrong_rank():
    with pytest.raises(InputError, match=r"embedding needs a 1-D input of token ids"):
        Sequential([Embedding(5, 2, input_shape=(3, 2)), Flatten(), Dense(2, "softmax")]).compile(
            "categorical_crossentropy")
    with pytest.raises(InputError, match=r"lstm needs a 2-D input \(time, features\)"):
        Sequential([LSTM(3, input_shape=(4,)), Dense(2, "softmax")]).compile("categorical_crossentropy")
    with pytest.raises(InputError, match=r"return_sequences.*true or false"):
        GRU(3, return_sequences="yes")


def test_a_per_timestep_output_needs_categorical_crossentropy():
    with pytest.raises(InputError, match=r"must be 1-D \(or \(time, classes\)"):
        Sequential([Embedding(5, 2, input_shape=(3,)), Dense(1, "sigmoid")]).compile("binary_crossentropy")


def test_initial_sequence_weights_follow_keras_defaults():
    spec = Sequential([Embedding(50, 8, input_shape=(6,)), LSTM(16), Dense(3, "softmax")]).compile(
        "categorical_crossentropy")
    embedding, lstm, _ = initial_weights(spec, 0)
    assert np.abs(embedding["embeddings"]).max() <= 0.05 and embedding["embeddings"].std() > 0.02
    u = 16
    expected_bias = np.zeros(4 * u, np.float32)
    expected_bias[u:2 * u] = 1.0  # unit_forget_bias
    np.testing.assert_array_equal(lstm["bias"], expected_bias)
    rec = lstm["recurrent_kernel"].astype(np.float64)
    np.testing.assert_allclose(rec @ rec.T, np.eye(u), atol=1e-5)  # orthonormal rows (u < 4u)
    limit = math.sqrt(6 / (8 + 4 * u))
    assert np.abs(lstm["kernel"]).max() <= limit
    gru = Sequential([GRU(4, input_shape=(3, 2)), Dense(2, "softmax")]).compile("categorical_crossentropy")
    np.testing.assert_array_equal(initial_weights(gru, 0)[0]["bias"], np.zeros((2, 12), np.float32))


def test_orthogonal_is_seeded_and_orthonormal_both_ways():
    a, b = orthogonal(rng_for(3, 2), (6, 4)), orthogonal(rng_for(3, 2), (6, 4))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.T.astype(np.float64) @ a, np.eye(4), atol=1e-6)


# ----------------------------------------------------------------- flops
def test_embedding_and_per_timestep_dense_flops_by_hand():
    B, T, V, D = 3, 6, 11, 4
    embedding = B * T * D  # the scatter-add of backward
    dense = (2 * B * T * D * V + B * T * V) + (2 * B * T * D * V + B * T * V + 2 * B * T * D * V)
    loss = 6 * B * T * V
    update = 2 * (V * D + D * V + V)
    assert training_step_flops(lm(T, V, D), B) == embedding + dense + loss + update


@pytest.mark.parametrize("layer, k, cell", [(SimpleRNN, 1, (4, 2)), (LSTM, 4, (24, 20)), (GRU, 3, (17, 14))])
def test_recurrent_flops_by_hand(layer, k, cell):
    B, T, F, u = 2, 5, 3, 4
    spec = Sequential([layer(u, input_shape=(T, F)), Dense(2, "softmax")]).compile("categorical_crossentropy",
                                                                                   SGD(0.1))
    w = k * u
    forward = 2 * F * w + 2 * u * w + w + cell[0] * u
    backward = 2 * F * w + 2 * u * w + 2 * u * w + w + cell[1] * u  # dW, dU, dh_prev, db; no dx (first layer)
    dense = (2 * B * u * 2 + B * 2) + (2 * B * u * 2 + B * 2 + 2 * B * u * 2)
    n_params = sum(math.prod(s) for shapes in spec.param_shapes() for s in shapes.values())
    assert training_step_flops(spec, B) == B * T * (forward + backward) + dense + 6 * B * 2 + 2 * n_params
    later = Sequential([Dense(F, input_shape=(T, F)), layer(u), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    dense_first = 2 * (2 * B * T * F * F + B * T * F)
    n_later = n_params + F * F + F
    assert training_step_flops(later, B) - dense_first - 2 * n_later == \
        training_step_flops(spec, B) - 2 * n_params + B * T * 2 * F * w  # plus dE/dx_t


# ----------------------------------------------------------------- data
def test_chars_windows_are_next_character_targets_in_a_fixed_vocabulary():
    info = DATASETS["chars"]
    data = info.load(0, {"length": 16, "max_chars": 20000})
    assert data.x_train.dtype == np.int64 and data.x_train.shape[1:] == (16,)
    assert data.y_train.shape == data.x_train.shape
    np.testing.assert_array_equal(data.x_train[:, 1:], data.y_train[:, :-1])
    np.testing.assert_array_equal(data.y_train[:-1, -1], data.x_train[1:, 0])  # windows follow each other
    assert data.n_classes == CHAR_VOCAB == 97
    assert info.describe(0, {"length": 16, "max_chars": 20000}) == DatasetMeta.of(data)
    assert DatasetMeta.of(data).input_dtype == "int64" and DatasetMeta.of(data).target_shape == (16,)


def test_the_whole_corpus_is_about_465k_characters_of_english():
    data = DATASETS["chars"].load(0, {"length": 64})
    tokens = (data.x_train.size + data.x_test.size)
    assert 400_000 < tokens < 600_000
    text = decode_chars(data.x_train[:50].reshape(-1))
    assert text.count(" ") > len(text) / 10 and "the" in text


def test_encode_chars_maps_newline_ascii_and_everything_else():
    np.testing.assert_array_equal(encode_chars("\n a~é\t"), [1, 2, 67, 96, 0, 0])
    assert decode_chars(encode_chars("Hello\nworld")) == "Hello\nworld"


def test_token_files_npy_and_npz(tmp_path):
    stream = np.arange(200) % 13
    np.save(tmp_path / "s.npy", stream)
    data = DATASETS["tokens"].load(0, {"path": str(tmp_path / "s.npy"), "length": 9})
    assert data.n_classes == 13 and data.x_train.shape[1] == 9
    np.savez(tmp_path / "s.npz", train=stream[:150], test=stream[150:])
    meta = DATASETS["tokens"].describe(0, {"path": str(tmp_path / "s.npz"), "length": 9})
    assert (meta.n_train, meta.n_test, meta.vocab_size) == (16, 5, 13)


@pytest.mark.parametrize("array, message", [
    (np.linspace(0, 1, 50), "float64 values; expected integer token ids"),
    (np.zeros((5, 5), int), r"shape \(5, 5\); expected one 1-D stream"),
    (np.array([3, -1, 2] * 10), "negative token id -1"),
    (np.arange(5), "too few for one window"),
])
def test_bad_token_files_get_one_clear_error(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(InputError, match=message):
        DATASETS["tokens"].describe(0, {"path": str(tmp_path / "bad.npy"), "length": 4})


def test_token_file_errors_name_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="give the path"):
        DATASETS["tokens"].load(0, {})
    np.savez(tmp_path / "x.npz", train=np.arange(40))
    with pytest.raises(InputError, match="missing arrays test"):
        DATASETS["tokens"].load(0, {"path": str(tmp_path / "x.npz")})
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(InputError, match="expected .npy"):
        DATASETS["tokens"].load(0, {"path": str(tmp_path / "t.txt")})
    with pytest.raises(InputError, match="cannot read token file"):
        DATASETS["tokens"].load(0, {"path": str(tmp_path / "missing.npy")})


def test_parity_labels_are_the_parity_of_the_bits():
    data = DATASETS["parity"].load(3, {"n_samples": 100, "length": 6})
    assert data.x_train.shape[1:] == (6, 1) and data.x_train.dtype == np.float32
    np.testing.assert_array_equal(data.y_train, data.x_train.sum(axis=(1, 2)).astype(int) % 2)
    assert DATASETS["parity"].describe(3, {"n_samples": 100, "length": 6}) == DatasetMeta.of(data)


# ------------------------------------------------------------- metrics
def test_accuracy_per_token_and_sequence_metrics():
    outputs = np.zeros((2, 3, 4))
    outputs[..., 1] = 1.0
    labels = np.array([[1, 1, 0], [1, 2, 1]])
    assert accuracy(outputs, labels) == pytest.approx(4 / 6)
    metrics = sequence_metrics(lm(length=6), 100.0, math.log(5.0))
    assert metrics == {"tokens_per_sample": 6, "tokens_per_sec": 600.0, "test_perplexity": pytest.approx(5.0)}
    rnn = Sequential([GRU(3, input_shape=(8, 1)), Dense(2, "softmax")]).compile("categorical_crossentropy")
    assert sequence_metrics(rnn, 10.0, 0.5) == {"tokens_per_sample": 8, "tokens_per_sec": 80.0}
    mlp = Sequential([Dense(2, "softmax", input_shape=(3,))]).compile("categorical_crossentropy")
    assert sequence_metrics(mlp, 10.0, 0.5) == {}


# --------------------------------------------- models against their data
LM_SCENARIO = """
name = "tiny-lm"
[data]
name = "chars"
length = 8
max_chars = 5000
[model]
input_shape = [8]
layers = [ {{ type = "embedding", input_dim = {vocab}, output_dim = 4 }},
           {{ type = "{second}", units = {units}{extra} }},
           {{ type = "dense", units = 97, activation = "softmax" }} ]
[train]
loss = "categorical_crossentropy"
"""


def check(tmp_path, vocab=97, second="dense", units=5, extra=""):
    from dlbench.plugin.manager import get_plugins
    from dlbench.run.checks import check_against_data
    from dlbench.scenario import load_scenario_file

    path = tmp_path / "tiny-lm.toml"
    path.write_text(LM_SCENARIO.format(vocab=vocab, second=second, units=units, extra=extra))
    check_against_data(load_scenario_file(path), get_plugins())


def test_a_language_model_fits_the_chars_corpus(tmp_path):
    check(tmp_path)
    check(tmp_path, second="lstm", extra=", return_sequences = true")


def test_an_embedding_smaller_than_the_vocabulary_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"input_dim 50 is smaller than dataset 'chars''s 97 token ids"):
        check(tmp_path, vocab=50)


def test_labels_per_timestep_need_an_output_per_timestep(tmp_path):
    with pytest.raises(InputError, match=r"a label per timestep \(8,\) per sample, but the model's output is "
                                         r"\(97,\)"):
        check(tmp_path, second="gru")


def test_token_ids_need_an_embedding_first(tmp_path):
    from dlbench.plugin.manager import get_plugins
    from dlbench.run.checks import check_against_data
    from dlbench.scenario import load_scenario_file

    path = tmp_path / "s.toml"
    path.write_text('[data]\nname = "chars"\nlength = 8\n[model]\ninput_shape = [8]\nlayers = [ { type = "dense", '
                    'units = 97, activation = "softmax" } ]\n[train]\nloss = "categorical_crossentropy"\n')
    with pytest.raises(InputError, match="takes real numbers, but dataset 'chars' holds token ids"):
        check_against_data(load_scenario_file(path), get_plugins())


def test_adding_problem_labels_the_sum_of_the_two_marked_values():
    data = DATASETS["adding"].load(1, {"n_samples": 200, "length": 10})
    assert data.x_train.shape[1:] == (10, 2)
    values, markers = data.x_train[..., 0], data.x_train[..., 1]
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :5].sum(axis=1) == 1).all()  # one marker in each half
    np.testing.assert_array_equal(data.y_train, ((values * markers).sum(axis=1) > 1).astype(int))
    assert DATASETS["adding"].describe(1, {"n_samples": 200, "length": 10}) == DatasetMeta.of(data)
    with pytest.raises(InputError, match="at least 2"):
        DATASETS["adding"].describe(1, {"n_samples": 200, "length": 1})


def test_a_bad_expected_perplexity_is_refused(tmp_path):
    from dlbench.scenario import load_scenario_file

    path = tmp_path / "s.toml"
    path.write_text('expected_perplexity = [0.5, 2]\n' + LM_SCENARIO.format(vocab=97, second="dense", units=5,
                                                                             extra=""))
    with pytest.raises(InputError, match=r"expected_perplexity: must be \[low, high\] with 1 <= low <= high"):
        load_scenario_file(path)
