"""The NumPy backend's backpropagation against finite differences, in float64."""

import numpy as np
import pytest

from dlbench.plugin.helpers import loss_targets
from dlbench.network.init import initial_weights
from dlbench.network import (ACTIVATIONS, Activation, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Flatten, MaxPool1D, MaxPool2D, Sequential)
from dlbench_backends.numpy.activations import ActivationLayer
from dlbench_backends.numpy.kernels import DropoutLayer
from dlbench_backends.numpy.precision import Arithmetic
from dlbench_backends.numpy.losses import LOSSES
from dlbench_backends.numpy.network import Network

EPS = 1e-6


def numeric_gradient(f, x: np.ndarray) -> np.ndarray:
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * EPS)
    return grad


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_matches_finite_differences(name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5))
    upstream = rng.standard_normal((4, 5))
    layer = ActivationLayer(name)
    layer.forward(x.copy())
    analytic = layer.backward(upstream.copy())
    numeric = numeric_gradient(lambda: float(np.sum(ActivationLayer(name).forward(x.copy()) * upstream)), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


LOSS_CASES = [
    ("categorical_crossentropy", "softmax", 4, np.array([0, 3, 1, 2, 3])),
    ("binary_crossentropy", "sigmoid", 1, np.array([0, 1, 1, 0, 1])),
    ("mse", "linear", 1, np.array([0, 1, 1, 0, 1])),
    ("mse", "sigmoid", 3, np.array([0, 2, 1, 0, 2])),
    ("mse", "tanh", 3, np.array([0, 2, 1, 0, 2])),
]


@pytest.mark.parametrize("loss,activation,units,labels", LOSS_CASES)
def test_loss_gradient_matches_finite_differences(loss, activation, units, labels):
    spec = Sequential([Dense(units, activation, input_shape=(3,))]).compile(loss, "sgd")
    z = np.random.default_rng(2).standard_normal((5, units)) * 3
    targets = loss_targets(spec, labels)
    if targets.dtype == np.float32:
        targets = targets.astype(np.float64)
    fn = LOSSES[loss]
    _, analytic = fn(z.copy(), targets, ActivationLayer(activation))
    numeric = numeric_gradient(lambda: fn(z, targets, ActivationLayer(activation))[0], z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


OPTION_CASES = [
    ({"name": "categorical_crossentropy", "label_smoothing": 0.2}, "softmax", 4, np.array([0, 3, 1, 2, 3])),
    ({"name": "huber", "delta": 0.6}, "linear", 2, None),  # residuals on both sides of delta
    ({"name": "huber", "delta": 2.0}, "tanh", 3, None),
    ("mae", "linear", 2, None),
    ("mae", "sigmoid", 1, None),
    ("mse", "linear", 3, None),
]


@pytest.mark.parametrize("loss,activation,units,labels", OPTION_CASES)
def test_loss_options_and_float_targets_match_finite_differences(loss, activation, units, labels):
    """Label smoothing, huber's delta, mae, and float (regression) targets: the hand-written gradient."""
    from dlbench_backends.numpy.losses import bound_loss

    spec = Sequential([Dense(units, activation, input_shape=(3,))]).compile(loss, "sgd")
    rng = np.random.default_rng(2)
    z = rng.standard_normal((5, units)) * 3
    targets = loss_targets(spec, labels) if labels is not None else rng.standard_normal((5, units)) * 2
    fn = bound_loss(spec)
    _, analytic = fn(z.copy(), targets, ActivationLayer(activation))
    numeric = numeric_gradient(lambda: fn(z, targets, ActivationLayer(activation))[0], z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_label_smoothing_is_the_cross_entropy_of_the_smoothed_target():
    """E = -sum_j q_j log softmax(z)_j with q = (1 - eps) onehot + eps / K (torch's and Keras's q)."""
    spec = Sequential([Dense(4, "softmax", input_shape=(3,))]).compile(
        {"name": "categorical_crossentropy", "label_smoothing": 0.3}, "sgd")
    from dlbench_backends.numpy.losses import bound_loss

    z = np.random.default_rng(5).standard_normal((6, 4)) * 2
    labels = np.array([0, 1, 2, 3, 1, 0])
    q = 0.7 * np.eye(4)[labels] + 0.3 / 4
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss, _ = bound_loss(spec)(z, labels, ActivationLayer("softmax"))
    assert loss == pytest.approx(float(np.mean(-(q * log_p).sum(axis=1))), rel=1e-12)


def test_mae_gradient_is_zero_where_the_output_equals_its_target():
    z = np.array([[1.0, -2.0, 0.5]])
    _, grad = LOSSES["mae"](z.copy(), np.array([[1.0, 0.0, 0.0]]), ActivationLayer("linear"))
    np.testing.assert_array_equal(grad, [[0.0, -1 / 3, 1 / 3]])


def test_binary_crossentropy_is_finite_for_huge_logits():
    z = np.array([[80.0], [-80.0]], np.float32)
    loss, grad = LOSSES["binary_crossentropy"](z, np.array([[0.0], [1.0]], np.float32), ActivationLayer("sigmoid"))
    assert np.isfinite(loss) and loss == pytest.approx(80.0, rel=1e-5)
    assert np.all(np.isfinite(grad))


NETWORKS = {
    "dense-relu-softmax": Sequential([Dense(6, "relu", input_shape=(4,)), Dense(5, "tanh"),
                                      Dense(3, "softmax")]).compile("categorical_crossentropy", "sgd"),
    "activation-layers": Sequential([Dense(6, input_shape=(4,)), Activation("sigmoid"), Dense(1),
                                     Activation("sigmoid")]).compile("binary_crossentropy", "sgd"),
    "softmax-hidden-mse": Sequential([Dense(6, "softmax", input_shape=(4,)), Dense(2, "linear")])
    .compile("mse", "sgd"),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_parameter_gradients_match_finite_differences(name):
    spec = NETWORKS[name]
    weights = initial_weights(spec, seed=3)
    net = Network(spec, weights, dtype=np.float64)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 4))
    labels = rng.integers(0, spec.output_shape[0] if spec.output_shape[0] > 1 else 2, 7)
    targets = loss_targets(spec, labels)
    targets = targets.astype(np.float64) if targets.dtype == np.float32 else targets
    net.loss_and_gradients(x, targets)
    analytic = net.grad.copy()
    numeric = numeric_gradient(lambda: net.loss(net.logits(x.copy()), targets, net.output)[0], net.theta)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_first_layer_does_not_compute_an_input_gradient():
    spec = NETWORKS["dense-relu-softmax"]
    net = Network(spec, initial_weights(spec, 0))
    assert net.layers[0].input_grad is False
    assert all(layer.input_grad for layer in net.layers[1:] if hasattr(layer, "input_grad"))


def test_network_runs_in_float32_and_leaves_the_input_untouched():
    spec = NETWORKS["activation-layers"]
    net = Network(spec, initial_weights(spec, 0))
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    before = x.copy()
    z = net.logits(x)
    assert z.dtype == np.float32 and net.theta.dtype == np.float32
    np.testing.assert_array_equal(x, before)


CONV_NETWORKS = {
    "conv2d-valid-stride1": [Conv2D(3, 3, input_shape=(6, 5, 2)), Flatten(), Dense(3, "softmax")],
    "conv2d-same-stride2": [Conv2D(2, (3, 2), strides=2, padding="same", input_shape=(7, 6, 2)), Flatten(),
                            Dense(3, "softmax")],
    "conv2d-int-padding": [Conv2D(2, 3, strides=(1, 2), padding=1, activation="tanh", input_shape=(5, 6, 1)),
                           Flatten(), Dense(3, "softmax")],
    "conv2d-same-even-kernel": [Conv2D(2, 4, padding="same", input_shape=(5, 5, 1)), Flatten(), Dense(3, "softmax")],
    "conv1d-valid": [Conv1D(3, 3, input_shape=(9, 2)), Flatten(), Dense(3, "softmax")],
    "conv1d-same-stride2": [Conv1D(2, 4, strides=2, padding="same", input_shape=(9, 2)), Flatten(),
                            Dense(3, "softmax")],
    "conv1d-int-padding": [Conv1D(2, 3, padding=2, activation="relu", input_shape=(6, 1)), Flatten(),
                           Dense(3, "softmax")],
    "second-conv-gets-input-gradient": [Conv2D(2, 2, input_shape=(5, 5, 1)), Conv2D(2, 2, strides=2, padding="same"),
                                        Flatten(), Dense(3, "softmax")],
    # the second convolution's input gradient reaches the first one's parameters; TF SAME with an even
    # kernel pads asymmetrically (rows 3 -> 1 top, 2 bottom; cols 1 -> 0 left, 1 right)
    "conv2d-input-gradient-asymmetric-padding": [Conv2D(2, 2, input_shape=(7, 6, 1)),
                                                 Conv2D(2, (4, 2), padding="same", activation="tanh"),
                                                 Flatten(), Dense(3, "softmax")],
    "conv2d-input-gradient-same-stride2": [Conv2D(2, 2, input_shape=(8, 7, 1)),
                                           Conv2D(2, 3, strides=2, padding="same"), Flatten(), Dense(3, "softmax")],
    "conv1d-input-gradient-asymmetric-padding": [Conv1D(2, 2, input_shape=(9, 1)), Conv1D(2, 4, padding="same"),
                                                 Flatten(), Dense(3, "softmax")],
    "conv1d-input-gradient-same-stride2": [Conv1D(2, 2, input_shape=(9, 1)),  # 8 -> 4: pad 0 left, 1 right
                                           Conv1D(3, 3, strides=2, padding="same", activation="relu"),
                                           Flatten(), Dense(3, "softmax")],
    "conv1d-input-gradient-int-padding": [Conv1D(2, 2, input_shape=(7, 1)), Conv1D(2, 3, padding=2),
                                          Flatten(), Dense(3, "softmax")],
    "maxpool2d": [Conv2D(2, 2, input_shape=(6, 6, 1)), MaxPool2D(2), Flatten(), Dense(3, "softmax")],
    "maxpool2d-overlapping": [Conv2D(2, 2, input_shape=(7, 7, 1)), MaxPool2D(3, strides=2), Flatten(),
                              Dense(3, "softmax")],
    "averagepool2d": [Conv2D(2, 2, input_shape=(7, 6, 1)), AveragePool2D((2, 3), strides=(2, 1)), Flatten(),
                      Dense(3, "softmax")],
    "maxpool1d": [Conv1D(2, 3, input_shape=(10, 1)), MaxPool1D(2), Flatten(), Dense(3, "softmax")],
    "averagepool1d": [Conv1D(2, 3, input_shape=(10, 1)), AveragePool1D(3, strides=2), Flatten(), Dense(3, "softmax")],
    "batchnorm-dense": [Dense(5, input_shape=(4,)), BatchNormalization(), Activation("relu"), Dense(3, "softmax")],
    "batchnorm-conv": [Conv2D(2, 2, input_shape=(4, 4, 1)), BatchNormalization(0.9, 1e-5), Flatten(),
                       Dense(3, "softmax")],
    "batchnorm-first": [BatchNormalization(input_shape=(4,)), Dense(3, "softmax")],
}


@pytest.mark.parametrize("name", list(CONV_NETWORKS))
def test_conv_pool_and_batchnorm_gradients_match_finite_differences(name):
    layers = CONV_NETWORKS[name]
    spec = Sequential(layers).compile("categorical_crossentropy", "sgd")
    weights = initial_weights(spec, seed=3)
    for layer in weights:  # non-trivial BatchNormalization parameters
        for key in ("gamma", "beta"):
            if key in layer:
                layer[key] = np.random.default_rng(5).uniform(0.5, 1.5, layer[key].shape).astype(np.float32)
    net = Network(spec, weights, dtype=np.float64)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, *spec.input_shape))
    targets = rng.integers(0, 3, 5)
    moving = [dict(s) for s in net._state]
    net.loss_and_gradients(x, targets)
    analytic = net.grad.copy()

    def loss():
        for state, saved in zip(net._state, moving):  # keep the moving statistics out of the check
            for k in state:
                state[k][...] = saved[k]
        return net.loss(net.logits(x.copy()), targets, net.output)[0]

    numeric = numeric_gradient(loss, net.theta)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_conv_forward_matches_a_direct_convolution():
    spec = Sequential([Conv2D(3, (3, 2), strides=(2, 1), padding="same", input_shape=(7, 5, 2)), Flatten(),
                       Dense(2, "softmax")]).compile("categorical_crossentropy", "sgd")
    weights = initial_weights(spec, 0)
    kernel, x = weights[0]["kernel"].astype(np.float64), np.random.default_rng(0).standard_normal((2, 7, 5, 2))
    net = Network(spec, weights, dtype=np.float64)
    got = net.layers[0].forward(x)
    # TF SAME: output 4 x 5; total padding rows (4-1)*2+3-7 = 2 -> 1 top, 1 bottom; cols 1 -> 0 left, 1 right
    xp = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)))
    expected = np.zeros((2, 4, 5, 3))
    for i in range(4):
        for j in range(5):
            patch = xp[:, 2 * i:2 * i + 3, j:j + 2, :]
            expected[:, i, j] = np.einsum("bhwc,hwcf->bf", patch, kernel)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_batchnorm_uses_batch_statistics_in_training_and_moving_ones_in_inference():
    spec = Sequential([BatchNormalization(momentum=0.9, epsilon=1e-3, input_shape=(3,)), Dense(2, "softmax")]) \
        .compile("categorical_crossentropy", "sgd")
    net = Network(spec, initial_weights(spec, 0), dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((50, 3)) * 4 + 2
    bn = net.layers[0]
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(net._state[0]["moving_mean"], 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(net._state[0]["moving_variance"], 0.9 + 0.1 * x.var(axis=0))
    y_inf = bn.forward(x, training=False)
    expected = (x - net._state[0]["moving_mean"]) / np.sqrt(net._state[0]["moving_variance"] + 1e-3)
    np.testing.assert_allclose(y_inf, expected)


def test_dropout_scales_kept_units_and_is_identity_at_inference():
    layer = DropoutLayer(0.25, np.random.default_rng(0))
    x = np.ones((400, 50), np.float32)
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_max_pool_routes_the_gradient_to_the_first_maximum_of_a_window():
    from dlbench_backends.numpy.kernels import PoolLayer

    layer = PoolLayer(MaxPool2D(2), "max")
    x = np.array([[[3.0], [3.0]], [[1.0], [3.0]]])[None]  # one 2x2 window, three tied maxima
    assert layer.forward(x.copy())[0, 0, 0, 0] == 3.0
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("name", ["conv2d-same-stride2", "conv1d-input-gradient-same-stride2"])
def test_reversed_summation_computes_the_same_gradients_with_other_roundings(name):
    """The certificate's summation-order twin: the same maths (finite differences
    in float64), and in float32 other last bits than the forward order."""
    spec = Sequential(CONV_NETWORKS[name]).compile("categorical_crossentropy", "sgd")
    weights = initial_weights(spec, seed=3)
    rng = np.random.default_rng(4)
    x64 = rng.standard_normal((5, *spec.input_shape))
    targets = rng.integers(0, 3, 5)
    net = Network(spec, weights, dtype=np.float64, arith=Arithmetic(reverse=True))
    net.loss_and_gradients(x64, targets)
    analytic = net.grad.copy()
    numeric = numeric_gradient(lambda: net.loss(net.logits(x64.copy()), targets, net.output)[0], net.theta)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    grads = {}
    for reverse in (False, True):
        net32 = Network(spec, weights, dtype=np.float32, arith=Arithmetic(reverse=reverse))
        net32.loss_and_gradients(x64.astype(np.float32), targets)
        grads[reverse] = net32.grad.copy()
    np.testing.assert_allclose(grads[True], grads[False], rtol=1e-4, atol=1e-6)
    assert not np.array_equal(grads[True], grads[False])
