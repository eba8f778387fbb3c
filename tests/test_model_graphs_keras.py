"""Keras functional graphs and the layers the spec has, read into specs: residual
adds (``+`` and ``Add()``), attention, recurrent layers, every call of a layer."""

import os

import numpy as np
import pytest

import dlbench
from dlbench import InputError
from dlbench.plugin.manager import get_plugins

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("torch")
L = keras.layers

from test_model_graphs import first_loss, spec_logits  # noqa: E402  (the NumPy reference's logits and loss)


def keras_transformer(dropout=0.0, causal=False):
    """keras-io's time-series Transformer encoder (see tests/published_models), small, without dropout."""
    inputs = keras.Input((12, 3))
    x = L.MultiHeadAttention(key_dim=4, num_heads=2, dropout=dropout)(inputs, inputs, use_causal_mask=causal)
    x = L.Dropout(dropout)(x)
    x = L.LayerNormalization(epsilon=1e-6)(x)
    res = x + inputs
    x = L.Conv1D(filters=5, kernel_size=1, activation="relu")(res)
    x = L.Conv1D(filters=3, kernel_size=1)(x)
    x = L.LayerNormalization(epsilon=1e-6)(x)
    x = L.Add()([x, res])
    x = L.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, L.Dense(2)(x))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    return model


@pytest.mark.parametrize("causal", [False, True])
def test_a_keras_functional_transformer_with_residual_adds_converts_exactly(causal):
    model = keras_transformer(causal=causal)
    for weight in model.weights:  # biases and norms that are not their initial values
        weight.assign(np.asarray(weight) + 0.1 * np.random.default_rng(0).standard_normal(weight.shape))
    imported = get_plugins().backend("tensorflow").import_model(model)
    layers = imported.spec.layers
    assert [layer.type for layer in layers] == ["residual", "residual", "global_average_pool1d", "dense",
                                                "activation"]
    assert [layer.type for layer in layers[0].layers] == ["self_attention", "dropout", "layer_norm"]
    assert layers[0].layers[0] == dlbench.SelfAttention(num_heads=2, key_dim=4, causal=causal)
    assert layers[0].layers[2].epsilon == 1e-6
    x = np.random.default_rng(2).standard_normal((8, 12, 3)).astype(np.float32)
    y = np.arange(8) % 2
    np.testing.assert_allclose(spec_logits(imported, x), np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-5)
    assert first_loss(imported, x, y) == pytest.approx(float(model.loss(y, model(x, training=True))), rel=1e-5)


def test_a_keras_layer_called_twice_is_applied_twice_unless_it_has_weights():
    relu = L.ReLU()
    inputs = keras.Input((4,))
    outputs = L.Dense(2, activation="softmax")(relu(L.Dense(3)(relu(inputs))))
    model = keras.Model(inputs, outputs)
    spec = dlbench.from_keras(model, loss="categorical_crossentropy", optimizer="adam")
    assert [layer.type for layer in spec.layers] == ["activation", "dense", "activation", "dense"]
    shared = L.Dense(4)
    model = keras.Model(inputs, L.Dense(2, activation="softmax")(shared(shared(inputs))))
    with pytest.raises(InputError, match=r"layer 1 \('dense_\d+', Dense\): the layer is called at two places: "
                                         "its weights are shared"):
        dlbench.from_keras(model, loss="categorical_crossentropy", optimizer="adam")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_keras_embedding_and_stacked_recurrent_layers_convert_exactly(kind):
    layer = getattr(L, kind)
    model = keras.Sequential([keras.Input((7,)), L.Embedding(30, 5), layer(6, return_sequences=True), L.Dropout(0.0),
                              layer(4), L.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd")
    for weight in model.weights:  # biases that are not their initial values
        weight.assign(np.asarray(weight) + 0.1 * np.random.default_rng(0).standard_normal(weight.shape))
    imported = get_plugins().backend("tensorflow").import_model(model)
    kinds = [layer.type for layer in imported.spec.layers]
    rnn = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}[kind]
    assert kinds == ["embedding", rnn, "dropout", rnn, "dense", "activation"]
    x = np.random.default_rng(3).integers(0, 30, (8, 7))
    np.testing.assert_allclose(spec_logits(imported, x), np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-5)
