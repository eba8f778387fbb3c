"""The NumPy backend's backpropagation against finite differences, in float64."""

import numpy as np
import pytest

from dlbench.backend import loss_targets
from dlbench.initializers import initial_weights
from dlbench.spec import ACTIVATIONS, Activation, Dense, Sequential
from dlbench_backends.numpy_backend import LOSSES, ActivationLayer, Network

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
