"""Scenarios written as TOML read back as the same scenario (every layer type, every optimizer and schedule)."""

import dataclasses
import tomllib

import pytest

from dlbench.errors import InputError
from dlbench.scenario import Scenario, parse_scenario, scenario_files, load_scenario_file
from dlbench.scenario import dumps, scenario_document, write_scenario
from dlbench.network import (LAYER_TYPES, SGD, Activation, Adam, AveragePool1D, AveragePool2D, BatchNormalization,
                          Conv1D, Conv2D, Dense, Dropout, Flatten, GlobalAveragePool1D, GlobalAveragePool2D,
                          GlobalMaxPool1D, GlobalMaxPool2D, LayerNormalization,
                          MaxPool1D, MaxPool2D, PositionEmbedding, Residual, SelfAttention, Sequential, TrainSpec,
                          Adadelta, AdamW, CosineDecay, ExponentialDecay, RMSprop, StepDecay, WarmupCosine,
                          WarmupLinear)
from dlbench.network.optimizers import optimizer_table
from dlbench.network.sequence import GRU, LSTM, Bidirectional, Embedding, SimpleRNN


def scenario(spec, train=TrainSpec(), **fields) -> Scenario:
    return Scenario(name=fields.pop("name", "s"), description=fields.pop("description", ""),
                    data_name="synthetic", data_options=fields.pop("data_options", {}), model=spec, train=train,
                    **fields)


def read_back(s: Scenario) -> Scenario:
    return parse_scenario(tomllib.loads(dumps(scenario_document(s))), "unused")


IMAGE = Sequential([
    Conv2D(3, kernel_size=(3, 2), strides=(2, 1), padding="same", activation="relu"),
    BatchNormalization(momentum=0.9, epsilon=1e-5),
    MaxPool2D(pool_size=2, strides=1),
    Conv2D(4, kernel_size=2, padding=1, activation="tanh"),
    AveragePool2D(pool_size=(2, 1)),
    Flatten(),
    Dropout(0.25),
    Dense(7, activation="sigmoid"),
    Dense(3),
    Activation("softmax"),
], input_shape=(9, 8, 2)).compile("categorical_crossentropy", Adam(0.003, beta_1=0.8, beta_2=0.95, epsilon=1e-8))

SIGNAL = Sequential([
    Conv1D(5, kernel_size=4, strides=2, padding="valid", activation="linear"),
    MaxPool1D(pool_size=3, strides=2),
    Conv1D(2, kernel_size=1),
    AveragePool1D(pool_size=2),
    Flatten(),
    Dense(1, activation="sigmoid"),
], input_shape=(40, 1)).compile("binary_crossentropy", SGD(learning_rate=0.1, momentum=0.9))

SEQUENCE = Sequential([
    PositionEmbedding(max_length=12),
    Residual([LayerNormalization(epsilon=1e-6), SelfAttention(num_heads=2, key_dim=3, causal=True)]),
    Residual([Residual([Conv1D(4, kernel_size=1, activation="gelu")]), Conv1D(4, kernel_size=1)]),
    GlobalAveragePool1D(),
    Dense(3, activation="softmax"),
], input_shape=(10, 4)).compile("categorical_crossentropy", Adam(0.01))

RECURRENT = Sequential([
    Embedding(input_dim=20, output_dim=6),
    SimpleRNN(5, return_sequences=True),
    GRU(4, return_sequences=True),
    LSTM(3),
    Dense(2, activation="softmax"),
], input_shape=(7,)).compile("categorical_crossentropy", Adam(0.01))

#: the newer layers: activations with alpha, both GELU forms, layers without a bias, global pooling
NEWER_IMAGE = Sequential([
    Conv2D(4, kernel_size=3, use_bias=False), Activation("leaky_relu", alpha=0.2), Conv2D(3, 2, activation="elu"),
    GlobalAveragePool2D(), Dense(4, "silu", use_bias=False), Dense(4, "gelu_erf"), Dense(3, "gelu_tanh"),
    Dense(2, "leaky_relu"), Activation("elu", alpha=0.5),
], input_shape=(6, 5, 2)).compile("mse", SGD(0.1))
NEWER_POOLS = Sequential([
    Conv1D(3, kernel_size=2, use_bias=False), GlobalMaxPool1D(), Dense(2, "softmax"),
], input_shape=(9, 2)).compile("categorical_crossentropy", Adam(0.01))
NEWER_MAX2D = Sequential([
    Residual([Conv2D(4, 3, strides=2, padding="same", use_bias=False), BatchNormalization()],
             shortcut=[Conv2D(4, 1, strides=2, use_bias=False), BatchNormalization(momentum=0.9)]),
    GlobalMaxPool2D(), Dense(2, "softmax"),
], input_shape=(4, 4, 3)).compile("categorical_crossentropy", Adam(0.01))
NEWER_RECURRENT = Sequential([
    Embedding(input_dim=20, output_dim=4), Bidirectional(LSTM(3, return_sequences=True)), Bidirectional(GRU(2)),
    Dense(2, activation="softmax"),
], input_shape=(7,)).compile("categorical_crossentropy", Adam(0.01))
NEWER = (NEWER_IMAGE, NEWER_POOLS, NEWER_MAX2D, NEWER_RECURRENT)


def test_every_layer_type_is_covered_by_the_round_trip_models():
    def types(layers):
        for layer in layers:
            yield layer.type
            yield from types(getattr(layer, "layers", ()))  # a residual block's inner layers

    used = {t for spec in (IMAGE, SIGNAL, SEQUENCE, RECURRENT, *NEWER) for t in types(spec.layers)}
    assert used == set(LAYER_TYPES)


@pytest.mark.parametrize("spec", [IMAGE, SIGNAL, SEQUENCE, RECURRENT, *NEWER],
                         ids=["image", "signal", "sequence", "recurrent", "newer-image", "newer-pools", "newer-max2d",
                              "newer-recurrent"])
def test_a_written_scenario_reads_back_equal(spec):
    s = scenario(spec, TrainSpec(batch_size=7, epochs=3, seed=11, drop_last=True, target_accuracy=0.75),
                 name="my model", description='quotes " and \\ and ünïcode', source="keras 'seq'",
                 expected_accuracy=(0.5, 1.0), data_options={"n_samples": 300, "noise": 0.125, "flag": True})
    back = read_back(s)
    assert back == s
    assert [type(a) for a in back.model.layers] == [type(b) for b in spec.layers]


NEWER_OPTIMIZERS = [
    SGD(0.1, 0.9, nesterov=True, weight_decay=1e-4, schedule=StepDecay(30, 0.1)),
    Adam(0.01, weight_decay=0.01, clip_value=0.5, schedule=ExponentialDecay(0.999)),
    AdamW(3e-4, weight_decay=0.05, clip_global_norm=1.0, schedule=WarmupCosine(100, 1000, alpha=0.01)),
    RMSprop(0.01, rho=0.95, epsilon=1e-6, momentum=0.9, centered=True, schedule=CosineDecay(500)),
    Adadelta(schedule=WarmupLinear(10, 200, alpha=0.1)),
]


@pytest.mark.parametrize("optimizer", NEWER_OPTIMIZERS, ids=lambda o: o.name)
def test_every_optimizer_schedule_and_clipping_reads_back_equal(optimizer):
    s = scenario(Sequential([Dense(2, activation="softmax")], input_shape=(3,)).compile(
        "categorical_crossentropy", optimizer))
    assert read_back(s).model.optimizer == optimizer
    table = tomllib.loads(dumps(scenario_document(s)))["train"]["optimizer"]
    assert table["schedule"]["name"] == optimizer.schedule.name
    assert ("clip_value" in table) == (optimizer.clip_value is not None)  # None is not written (TOML has none)


def test_an_optimizer_without_the_newer_options_is_written_as_before_they_existed():
    """The same table (so a written scenario's text and digest) for SGD and Adam as before
    nesterov, weight decay, clipping and schedules: those are written only where set."""
    assert optimizer_table(SGD(0.1, 0.9)) == {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}
    assert optimizer_table(Adam()) == {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                                       "epsilon": 1e-7}
    assert optimizer_table(AdamW(weight_decay=0.0))["weight_decay"] == 0.0  # not AdamW's default: written


def test_floats_are_written_exactly():
    s = scenario(Sequential([Dense(2, activation="softmax")], input_shape=(3,)).compile(
        "categorical_crossentropy", Adam(learning_rate=0.1 + 0.2, epsilon=1e-7)))
    assert read_back(s).model.optimizer.learning_rate == 0.1 + 0.2


@pytest.mark.parametrize("name", sorted(scenario_files()))
def test_every_shipped_scenario_reads_back_equal(name, tmp_path):
    shipped = load_scenario_file(scenario_files()[name])
    written = load_scenario_file(write_scenario(shipped, tmp_path / "copy.toml"))
    strip = dict(path="", digest="")
    assert dataclasses.replace(written, **strip) == dataclasses.replace(shipped, **strip)


def test_a_value_toml_cannot_hold_is_refused_naming_it():
    s = scenario(IMAGE, data_options={"path": object()})
    with pytest.raises(InputError, match="data.path: object .* cannot be written to a scenario file"):
        dumps(scenario_document(s))
