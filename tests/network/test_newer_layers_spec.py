"""The newer layers in the spec: activations with an alpha and their defaults,
both GELU forms (plain ``gelu`` the tanh one, as before), layers without a
bias, global pooling; their FLOP counts and memory estimate."""

import math

import pytest

from dlbench.errors import InputError
from dlbench.network import (Activation, BatchNormalization, Conv1D, Conv2D, Dense, Flatten, GlobalAveragePool2D,
                          GlobalMaxPool1D, GlobalMaxPool2D, Residual, Sequential, activation_alpha)
from dlbench.network.flops import ACTIVATION_FLOPS, training_step_flops
from dlbench.network.memory import training_memory_bytes


def test_alpha_defaults_are_the_specs_own_and_equal_to_writing_them_out():
    assert Activation("leaky_relu").alpha == 0.01 and Activation("elu").alpha == 1.0
    assert Activation("leaky_relu") == Activation("leaky_relu", alpha=0.01)
    assert Activation("relu").alpha is None
    assert activation_alpha(Dense(3, "leaky_relu")) == 0.01 and activation_alpha(Conv2D(2, activation="elu")) == 1.0
    assert activation_alpha(Dense(3, "relu")) is None
    assert activation_alpha(Activation("leaky_relu", alpha=0.3)) == 0.3


@pytest.mark.parametrize("make, field, message", [
    (lambda: Activation("leaky_relu", alpha=-0.01), "alpha", "must be in [0.0, inf), got -0.01"),
    (lambda: Activation("elu", alpha="1"), "alpha", "must be a number, got '1'"),
    (lambda: Activation("gelu_erf", alpha=0.1), "alpha", "only leaky_relu and elu take an alpha, not gelu_erf"),
    (lambda: Dense(3, use_bias=0), "use_bias", "must be true or false, got 0"),
    (lambda: Conv1D(3, use_bias="false"), "use_bias", "must be true or false, got 'false'"),
    (lambda: Activation("gelu_exact"), "activation", "unknown 'gelu_exact'; expected one of elu, gelu, gelu_erf"),
])
def test_bad_values_name_the_field_and_what_is_allowed(make, field, message):
    with pytest.raises(InputError) as info:
        make()
    assert info.value.field == field and message in info.value.message


def test_a_layer_without_a_bias_has_only_a_kernel_and_fewer_parameters():
    with_bias = Sequential([Conv2D(4, 3, input_shape=(6, 6, 2)), BatchNormalization(), Flatten(),
                            Dense(3, "softmax")]).compile("categorical_crossentropy", "sgd")
    without = Sequential([Conv2D(4, 3, input_shape=(6, 6, 2), use_bias=False), BatchNormalization(), Flatten(),
                          Dense(3, "softmax", use_bias=False)]).compile("categorical_crossentropy", "sgd")
    assert without.param_shapes()[0] == {"kernel": (3, 3, 2, 4)} and without.param_shapes()[3] == {"kernel": (64, 3)}
    assert with_bias.n_params - without.n_params == 4 + 3
    saved = training_memory_bytes(with_bias, 8)["parameters"] - training_memory_bytes(without, 8)["parameters"]
    assert saved == (4 + 3) * 2 * 4  # value and gradient, float32, plain SGD
    # the bias's add forward and sum backward per output element, and SGD's update of each bias (2)
    assert training_step_flops(with_bias, 8) - training_step_flops(without, 8) == 2 * 8 * (4 * 4 * 4 + 3) + 2 * 7


@pytest.mark.parametrize("layer, shape, out", [
    (GlobalAveragePool2D(), (5, 4, 3), (3,)), (GlobalMaxPool2D(), (5, 4, 3), (3,)), (GlobalMaxPool1D(), (7, 2), (2,)),
])
def test_global_pooling_keeps_the_channels_and_counts_one_flop_each_way_per_input(layer, shape, out):
    spec = Sequential([layer, Dense(2, "softmax")], input_shape=shape).compile("categorical_crossentropy", "sgd")
    assert spec.output_shape == (2,) and spec.shapes[0][1] == out and spec.param_shapes()[0] == {}
    bare = Sequential([Dense(2, "softmax")], input_shape=out).compile("categorical_crossentropy", "sgd")
    assert training_step_flops(spec, 4) - training_step_flops(bare, 4) == 2 * 4 * math.prod(shape) \
        + 2 * 4 * out[0] * 2  # and the dense layer's input gradient: it is not the first layer any more


@pytest.mark.parametrize("layer, shape", [(GlobalMaxPool2D(), (5, 3)), (GlobalMaxPool1D(), (4, 4, 2)),
                                          (GlobalAveragePool2D(), (6,))])
def test_global_pooling_of_the_wrong_rank_is_refused(layer, shape):
    with pytest.raises(InputError, match=f"{layer.type} needs a {layer.ndim + 1}-D input"):
        Sequential([layer, Dense(2, "softmax")], input_shape=shape).compile("categorical_crossentropy", "sgd")


def test_every_activation_has_a_flop_count_and_gelu_counts_as_its_tanh_form():
    from dlbench.network import ACTIVATIONS

    assert set(ACTIVATION_FLOPS) == set(ACTIVATIONS)
    assert ACTIVATION_FLOPS["gelu"] == ACTIVATION_FLOPS["gelu_tanh"] != ACTIVATION_FLOPS["gelu_erf"]
    dense = Sequential([Dense(5, "silu", input_shape=(3,)), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", "sgd")
    linear = Sequential([Dense(5, input_shape=(3,)), Dense(2, "softmax")]).compile("categorical_crossentropy", "sgd")
    assert training_step_flops(dense, 4) - training_step_flops(linear, 4) == (5 + 5) * 4 * 5


def test_a_residual_shortcut_counts_its_layers_flops_and_parameters():
    block = Residual([Conv2D(4, 3, strides=2, padding="same", use_bias=False), BatchNormalization()],
                     shortcut=[Conv2D(4, 1, strides=2, use_bias=False), BatchNormalization()])
    spec = Sequential([Conv2D(2, 1, input_shape=(6, 6, 2)), block, GlobalAveragePool2D(), Dense(3, "softmax")]
                      ).compile("categorical_crossentropy", "sgd")
    assert spec.shapes[1][1] == (3, 3, 4) and spec.param_shapes()[1]["shortcut.0.kernel"] == (1, 1, 2, 4)
    assert spec.n_params == 2 * 2 + 2 + (3 * 3 * 2 * 4 + 2 * 4) + (2 * 4 + 2 * 4) + 4 * 3 + 3
    positions = 4 * 3 * 3  # batch 4, a 3x3 output
    shortcut = 3 * (2 * positions * 2 * 4) + 20 * positions * 4  # its convolution (not the first layer), its BN
    main = 3 * (2 * positions * 18 * 4) + 20 * positions * 4
    head = 2 * 4 * 3 * 3 * 4 + 3 * (2 * 4 * 4 * 3) + 2 * 4 * 3 + 6 * 4 * 3  # pool; dense (3 matmuls), bias; loss
    first = 2 * 2 * 4 * 36 * 2 * 2 + 2 * 4 * 36 * 2  # the first convolution: forward, kernel gradient; its bias
    update = 2 * spec.n_params
    assert training_step_flops(spec, 4) == first + main + shortcut + 2 * positions * 4 + head + update


def test_a_bidirectional_layer_doubles_its_layers_units_parameters_and_flops():
    from dlbench.network.sequence import LSTM, Bidirectional

    one = Sequential([LSTM(4, return_sequences=True), Flatten(), Dense(3, "softmax")], input_shape=(5, 2)).compile(
        "categorical_crossentropy", "sgd")
    both = Sequential([Bidirectional(LSTM(4, return_sequences=True)), Flatten(), Dense(3, "softmax")],
                      input_shape=(5, 2)).compile("categorical_crossentropy", "sgd")
    assert both.shapes[0][1] == (5, 8) and both.n_params == 2 * (one.n_params - (20 * 3 + 3)) + 40 * 3 + 3
    recurrent = training_step_flops(one, 2) - (2 * 2 * 20 * 3 * 3 + 2 * 2 * 3 + 6 * 2 * 3 + 2 * one.n_params)
    dense_and_update = 2 * 2 * 40 * 3 * 3 + 2 * 2 * 3 + 6 * 2 * 3 + 2 * both.n_params
    assert training_step_flops(both, 2) == 2 * recurrent + dense_and_update
