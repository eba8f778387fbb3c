"""The NumPy reference's newer layers against finite differences (float64) and
against their formulas: leaky_relu, elu, silu, both GELU forms, layers without
a bias, and global pooling."""

import math

import numpy as np
import pytest

from dlbench.network import (Activation, BatchNormalization, Conv1D, Conv2D, Dense, Dropout, Flatten, GlobalAveragePool2D,
                          GlobalMaxPool1D, GlobalMaxPool2D, MaxPool1D, MaxPool2D, Residual, Sequential)
from dlbench.network.init import initial_weights
from dlbench.network.sequence import GRU, LSTM, Bidirectional, SimpleRNN
from dlbench_backends.numpy.activations import ActivationLayer
from dlbench_backends.numpy.kernels import GlobalPoolLayer
from dlbench_backends.numpy.network import Network
from test_numpy_gradients import numeric_gradient

ALPHAS = [("leaky_relu", 0.2), ("leaky_relu", 0.0), ("leaky_relu", 1.5), ("elu", 0.5), ("elu", 2.0)]


@pytest.mark.parametrize("name, alpha", ALPHAS)
def test_activation_with_alpha_backward_matches_finite_differences(name, alpha):
    rng = np.random.default_rng(1)
    x, upstream = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    layer = ActivationLayer(name, alpha)
    layer.forward(x.copy())
    analytic = layer.backward(upstream.copy())
    numeric = numeric_gradient(lambda: float(np.sum(ActivationLayer(name, alpha).forward(x.copy()) * upstream)), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def _erf_gelu(x):
    return np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel()]).reshape(x.shape)


FORMULAS = {
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "gelu_erf": _erf_gelu,
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
}


@pytest.mark.parametrize("name", list(FORMULAS))
def test_activation_forward_is_its_formula_with_the_spec_default_alpha(name):
    x = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(ActivationLayer(name).forward(x.copy()), FORMULAS[name](x), rtol=1e-12, atol=1e-15)


def test_plain_gelu_is_the_tanh_form_and_the_erf_form_differs():
    x = np.linspace(-5, 5, 101)
    np.testing.assert_array_equal(ActivationLayer("gelu").forward(x.copy()),
                                  ActivationLayer("gelu_tanh").forward(x.copy()))
    difference = np.abs(ActivationLayer("gelu_erf").forward(x.copy()) - ActivationLayer("gelu_tanh").forward(x.copy()))
    assert 1e-4 < difference.max() < 1e-3


@pytest.mark.parametrize("name, alpha, slope", [("leaky_relu", 0.2, 0.2), ("elu", 0.5, 0.5), ("elu", 1.0, 1.0)])
def test_the_slope_at_zero_is_the_negative_sides(name, alpha, slope):
    """torch's and TensorFlow's kernels: f'(0) = alpha (jax.nn.leaky_relu's would be 1)."""
    layer = ActivationLayer(name, alpha)
    assert layer.forward(np.zeros(3))[0] == 0.0
    np.testing.assert_array_equal(layer.backward(np.ones(3)), slope)


def test_the_new_activations_leave_their_input_alone():
    """A layer before may hold its output for its backward pass (a max-pool does)."""
    for name in ("leaky_relu", "elu", "silu", "gelu_erf"):
        x = np.linspace(-2, 2, 9)
        ActivationLayer(name).forward(x)
        np.testing.assert_array_equal(x, np.linspace(-2, 2, 9), err_msg=name)


def _gradient_check(layers, loss="categorical_crossentropy", seed=3):
    spec = Sequential(layers).compile(loss, "sgd")
    weights = initial_weights(spec, seed)
    rng = np.random.default_rng(4)
    for layer in weights:  # non-zero biases and BatchNormalization parameters
        for key in ("bias", "gamma", "beta"):
            if key in layer:
                layer[key] = rng.uniform(0.5, 1.5, layer[key].shape).astype(np.float32)
    net = Network(spec, weights, dtype=np.float64)
    x = rng.standard_normal((5, *spec.input_shape))
    targets = rng.integers(0, spec.output_shape[0], 5)
    moving = [dict(s) for s in net._state]
    net.loss_and_gradients(x, targets)
    analytic = net.grad.copy()

    def loss():
        for state, saved in zip(net._state, moving):
            for k in state:
                state[k][...] = saved[k]
        return net.loss(net.logits(x.copy()), targets, net.output)[0]

    np.testing.assert_allclose(analytic, numeric_gradient(loss, net.theta), rtol=1e-5, atol=1e-8)
    return spec, net


NETWORKS = {
    "every-new-activation": [Dense(6, "leaky_relu", input_shape=(4,)), Activation("leaky_relu", alpha=0.3),
                             Dense(6, "elu"), Activation("elu", alpha=0.7), Dense(6, "silu"),
                             Dense(6, "gelu_erf"), Dense(5, "gelu_tanh"), Dense(3, "softmax")],
    "activations-after-max-pools": [Conv2D(2, 2, input_shape=(5, 5, 1)), MaxPool2D(2), Activation("sigmoid"),
                                    Flatten(), Dense(4, "tanh"), Dense(3, "softmax")],
    # an activation working in place after one whose backward reads its output (through pass-throughs)
    "activation-after-activation": [Dense(5, "sigmoid", input_shape=(4,)), Activation("tanh"), Dropout(0.0),
                                    Activation("relu"), Activation("softmax"),
                                    Residual([Dense(5, "tanh"), Activation("sigmoid")]), Dense(3, "softmax")],
    "conv1d-max-pool-then-gelu": [Conv1D(2, 2, input_shape=(7, 1)), MaxPool1D(2), Activation("gelu"), Flatten(),
                                  Dense(3, "softmax")],
    "no-biases": [Conv2D(3, 2, strides=2, padding="same", input_shape=(5, 5, 2), use_bias=False),
                  BatchNormalization(0.9, 1e-3), Activation("relu"), Flatten(),
                  Dense(4, "tanh", use_bias=False), Dense(3, "softmax", use_bias=False)],
    "conv1d-no-bias": [Conv1D(3, 3, input_shape=(7, 2), use_bias=False), Flatten(), Dense(3, "softmax")],
    "global-average-pool2d": [Conv2D(3, 2, activation="tanh", input_shape=(5, 4, 2)), GlobalAveragePool2D(),
                              Dense(3, "softmax")],
    "global-max-pool2d": [Conv2D(3, 2, input_shape=(5, 4, 2)), GlobalMaxPool2D(), Activation("elu"),
                          Dense(3, "softmax")],
    "global-max-pool1d": [Conv1D(3, 2, input_shape=(7, 2)), GlobalMaxPool1D(), Dense(3, "softmax")],
    # ResNet's basic block with the projection shortcut: a strided 1x1 convolution and BatchNormalization
    "residual-projection-shortcut": [
        Conv2D(3, 2, input_shape=(5, 5, 2)),
        Residual([Conv2D(4, 3, strides=2, padding="same", use_bias=False), BatchNormalization(0.9, 1e-3),
                  Activation("relu"), Conv2D(4, 3, padding="same", use_bias=False), BatchNormalization(0.9, 1e-3)],
                 shortcut=[Conv2D(4, 1, strides=2, use_bias=False), BatchNormalization(0.9, 1e-3)]),
        Activation("elu"), GlobalAveragePool2D(), Dense(3, "softmax")],
    "bidirectional-lstm-sequences": [Bidirectional(LSTM(3, return_sequences=True), input_shape=(5, 2)),
                                     Bidirectional(GRU(2)), Dense(3, "softmax")],
    "bidirectional-simple-rnn-after-a-dense": [Dense(3, "tanh", input_shape=(4, 2)),
                                                Bidirectional(SimpleRNN(3, return_sequences=True)),
                                                GlobalMaxPool1D(), Dense(3, "softmax")],
    "residual-dense-shortcut": [Dense(4, "tanh", input_shape=(4,)),
                                Residual([Dense(6, "silu"), Dense(3)], shortcut=[Dense(3, use_bias=False)]),
                                Dense(3, "softmax")],
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_gradients_match_finite_differences(name):
    _gradient_check(NETWORKS[name])


def test_a_layer_without_a_bias_has_no_bias_parameter():
    spec, net = _gradient_check(NETWORKS["no-biases"])
    assert [sorted(shapes) for shapes in spec.param_shapes()] == [
        ["kernel"], ["beta", "gamma", "moving_mean", "moving_variance"], [], [], ["kernel"], ["kernel"]]
    assert net.theta.size == spec.n_params


def test_global_max_pool_routes_the_gradient_to_the_first_maximum():
    layer = GlobalPoolLayer("max")
    x = np.array([[[1.0, 5.0], [3.0, 5.0]], [[3.0, 2.0], [0.0, 5.0]]])[None]  # (1, 2, 2, 2), ties in both channels
    np.testing.assert_array_equal(layer.forward(x), [[3.0, 5.0]])
    dx = layer.backward(np.array([[10.0, 20.0]]))
    np.testing.assert_array_equal(dx[0, ..., 0], [[0.0, 10.0], [0.0, 0.0]])
    np.testing.assert_array_equal(dx[0, ..., 1], [[20.0, 0.0], [0.0, 0.0]])


def test_global_average_pool_is_the_mean_over_every_position():
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 2))
    layer = GlobalPoolLayer("average")
    np.testing.assert_allclose(layer.forward(x), x.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(layer.backward(np.ones((3, 2))), np.full(x.shape, 1 / 20))


def test_bidirectional_is_the_layer_forward_and_over_the_flipped_sequence_with_its_own_weights():
    sequences = Sequential([Bidirectional(GRU(2, return_sequences=True)), Flatten(), Dense(2, "softmax")],
                           input_shape=(5, 3)).compile("categorical_crossentropy", "sgd")
    weights = initial_weights(sequences, 1)
    weights[0] = {name: w + np.float32(0.1) * (name.startswith("backward")) for name, w in weights[0].items()}
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    both = Network(sequences, weights, dtype=np.float64).layers[0].forward(x)
    ahead, behind = both[..., :2], both[..., 2:]
    one_way = Sequential([GRU(2, return_sequences=True), Flatten(), Dense(2, "softmax")], input_shape=(5, 3)).compile(
        "categorical_crossentropy", "sgd")
    def first_layer(spec, first):
        return Network(spec, [first, *initial_weights(spec, 0)[1:]], dtype=np.float64).layers[0]

    def direction(name):
        return {k.split(".", 1)[1]: v for k, v in weights[0].items() if k.startswith(name)}

    np.testing.assert_allclose(ahead, first_layer(one_way, direction("forward")).forward(x))
    np.testing.assert_allclose(behind, first_layer(one_way, direction("backward")).forward(
        x[:, ::-1].copy())[:, ::-1])  # the state at t after reading x_T .. x_t
    last = Sequential([Bidirectional(GRU(2)), Dense(2, "softmax")], input_shape=(5, 3)).compile(
        "categorical_crossentropy", "sgd")
    final = first_layer(last, weights[0]).forward(x)
    np.testing.assert_allclose(final, np.concatenate([ahead[:, -1], behind[:, 0]], axis=-1))
