import math
import dataclasses

from dlbench.network.flops import training_step_flops
from dlbench.network import SGD, Activation, Dense, Sequential


def test_mlp_step_flops_by_hand():
    # 4 -> 3 (relu) -> 2 (softmax), batch 5, plain SGD
    spec = Sequential([Dense(3, "relu", input_shape=(4,)), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    B = 5
    first = (2 * B * 4 * 3 + B * 3) + (2 * B * 4 * 3 + B * 3)  # forward + dW/db, no dX
    relu = 2 * B * 3
    second = (2 * B * 3 * 2 + B * 2) + (2 * B * 3 * 2 + B * 2 + 2 * B * 3 * 2)
    loss = 6 * B * 2
    update = 2 * (4 * 3 + 3 + 3 * 2 + 2)
    assert training_step_flops(spec, B) == first + relu + second + loss + update


def test_optimizer_and_activation_layers_count():
    base = Sequential([Dense(3, input_shape=(4,)), Activation("tanh"), Dense(1, "sigmoid")])
    sgd = training_step_flops(base.compile("binary_crossentropy", SGD(0.1)), 1)
    momentum = training_step_flops(base.compile("binary_crossentropy", SGD(0.1, 0.9)), 1)
    adam = training_step_flops(base.compile("binary_crossentropy", "adam"), 1)
    n_params = 4 * 3 + 3 + 3 + 1
    assert momentum - sgd == 2 * n_params
    assert adam - sgd == 10 * n_params


def test_flops_scale_with_batch_for_matmul_heavy_nets():
    spec = Sequential([Dense(256, "relu", input_shape=(64,)), Dense(256, "relu"), Dense(10, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    per_sample_small = training_step_flops(spec, 8) / 8
    per_sample_big = training_step_flops(spec, 512) / 512
    matmul_per_sample = 2 * (64 * 256 * 2 + 256 * 256 * 3 + 256 * 10 * 3)
    assert per_sample_small > per_sample_big  # the update is amortized over the batch
    assert abs(per_sample_big - matmul_per_sample) / matmul_per_sample < 0.02


def test_conv_flops_by_hand():
    from dlbench.network import Conv1D, Flatten

    spec = Sequential([Conv1D(4, 3, input_shape=(10, 2)), Flatten(), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    B, positions = 3, 3 * 8
    conv = 2 * (2 * positions * 6 * 4 + positions * 4)  # forward + dK/db, no dX for the first layer
    dense = 2 * B * 32 * 2 * 3 + 2 * B * 2
    update = 2 * (3 * 2 * 4 + 4 + 32 * 2 + 2)
    assert training_step_flops(spec, B) == conv + dense + 6 * B * 2 + update


# ---------------------------------------------- every layer against a hand count
from dlbench.network import (Adam, AveragePool1D, BatchNormalization, Conv2D, Dropout,  # noqa: E402
                          MaxPool2D)
from dlbench.network.flops import layer_flops  # noqa: E402

B = 3


def shapes_of(layers, input_shape):
    """(layer, in_shape, out_shape) of each layer, as the spec infers them."""
    from dlbench.network import Flatten

    first = dataclasses.replace(layers[0], input_shape=input_shape)
    spec = Sequential([first, *layers[1:], Flatten(), Dense(2, "softmax")]).compile("categorical_crossentropy", Adam())
    return [(layer, i, o) for layer, (i, o) in zip(spec.layers, spec.shapes)]


def test_tanh_and_sigmoid_activations_cost_4_forward_and_2_backward_per_element():
    for name in ("tanh", "sigmoid"):
        assert layer_flops(Activation(name), (7,), (7,), B, first=False) == (4 + 2) * B * 7
    assert layer_flops(Activation("relu"), (7,), (7,), B, first=False) == 2 * B * 7


def test_pooling_costs_the_window_forward_and_backward_per_output_element():
    ((pool, in_shape, out_shape), *_) = shapes_of([MaxPool2D(pool_size=(2, 3))], (4, 6, 2))
    assert out_shape == (2, 2, 2)
    assert layer_flops(pool, in_shape, out_shape, B, first=False) == 2 * (2 * 3) * B * 8
    ((avg, in_shape, out_shape), *_) = shapes_of([AveragePool1D(pool_size=4)], (8, 3))
    assert layer_flops(avg, in_shape, out_shape, B, first=False) == 2 * 4 * B * (2 * 3)


def test_batchnorm_and_dropout_cost_per_element():
    assert layer_flops(BatchNormalization(), (5,), (5,), B, first=False) == 20 * B * 5
    assert layer_flops(Dropout(0.5), (5,), (5,), B, first=False) == 3 * B * 5


def test_conv2d_counts_both_kernel_dimensions():
    ((conv, in_shape, out_shape), *_) = shapes_of([Conv2D(4, kernel_size=(2, 3))], (5, 6, 2))
    assert out_shape == (4, 4, 4)
    positions, fan_in = B * 4 * 4, 2 * 3 * 2
    matmul = 2 * positions * fan_in * 4
    n_out = B * 4 * 4 * 4
    assert layer_flops(conv, in_shape, out_shape, B, first=True) == (matmul + n_out) + (matmul + n_out)
    assert layer_flops(conv, in_shape, out_shape, B, first=False) == (matmul + n_out) + (2 * matmul + n_out)


def test_every_pooling_layer_costs_its_window_forward_and_backward():
    from dlbench.network import AveragePool2D, MaxPool1D

    for layer, input_shape, window in ((MaxPool1D(pool_size=2), (8, 3), 2), (AveragePool1D(pool_size=4), (8, 3), 4),
                                       (MaxPool2D(pool_size=(2, 2)), (4, 4, 2), 4),
                                       (AveragePool2D(pool_size=(2, 2)), (4, 4, 2), 4)):
        ((pool, in_shape, out_shape), *_) = shapes_of([layer], input_shape)
        n_out = B * math.prod(out_shape)
        assert layer_flops(pool, in_shape, out_shape, B, first=False) == 2 * window * n_out, layer


def test_a_hidden_softmax_costs_4_forward_and_4_backward_per_element():
    assert layer_flops(Activation("softmax"), (7,), (7,), B, first=False) == (4 + 4) * B * 7
    assert layer_flops(Activation("linear"), (7,), (7,), B, first=False) == 0
