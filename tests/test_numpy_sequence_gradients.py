"""The NumPy backend's sequence layers against finite differences, in float64:
every recurrent layer in both modes (return_sequences true and false), with
non-zero biases, stacked (so dE/dx of a recurrent layer is checked too),
the embedding, the dense layer per timestep and the cross-entropy of every
token; and the recurrent forward pass against a plain step-by-step
transcription of Keras's equations."""

import numpy as np
import pytest

from dlbench.network import GRU, LSTM, Dense, Embedding, Sequential, SimpleRNN
from dlbench.network.init import initial_weights
from dlbench_backends.numpy.network import Network
from test_numpy_gradients import numeric_gradient

T, F = 4, 3


def random_biases(weights, seed=7):
    rng = np.random.default_rng(seed)
    for layer in weights:
        if "bias" in layer:
            layer["bias"] = rng.uniform(-0.5, 0.5, layer["bias"].shape).astype(np.float32)
    return weights


CASES = {}
for cls in (SimpleRNN, LSTM, GRU):
    for sequences in (False, True):
        head = [Dense(3, "softmax")] if not sequences else [Dense(3, "softmax")]
        CASES[f"{cls.type}-return_sequences-{str(sequences).lower()}"] = (
            [Dense(F, "tanh", input_shape=(T, F)), cls(4, return_sequences=sequences), *head], "floats")
CASES["stacked-lstm-gru-simple"] = ([LSTM(3, return_sequences=True, input_shape=(T, F)),
                                     GRU(3, return_sequences=True), SimpleRNN(2), Dense(3, "softmax")], "floats")
CASES["embedding-lstm-language-model"] = ([Embedding(5, 3, input_shape=(T,)), LSTM(4, return_sequences=True),
                                           Dense(5, "softmax")], "tokens")
CASES["embedding-dense-per-timestep"] = ([Embedding(5, 3, input_shape=(T,)), Dense(4, "tanh"),
                                          Dense(5, "softmax")], "tokens")


@pytest.mark.parametrize("name", list(CASES))
def test_sequence_gradients_match_finite_differences(name):
    layers, kind = CASES[name]
    spec = Sequential(layers).compile("categorical_crossentropy", "sgd")
    net = Network(spec, random_biases(initial_weights(spec, seed=3)), dtype=np.float64)
    rng = np.random.default_rng(4)
    if kind == "tokens":
        x = rng.integers(0, 5, (3, T))
        targets = rng.integers(0, 5, (3, T))
    else:
        x = rng.standard_normal((3, T, F))
        targets = rng.integers(0, 3, (3, *spec.output_shape[:-1]))
    net.loss_and_gradients(x, targets)
    analytic = net.grad.copy()
    numeric = numeric_gradient(lambda: net.loss(net.logits(x.copy()), targets, net.output)[0], net.theta)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def keras_reference(layer, w, x):
    """Keras's cell equations, step by step, written out plainly."""
    u = layer.units
    h = np.zeros((x.shape[0], u))
    c = np.zeros_like(h)
    outputs = []
    for t in range(x.shape[1]):
        if isinstance(layer, SimpleRNN):
            h = np.tanh(x[:, t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
        elif isinstance(layer, LSTM):
            a = x[:, t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
            i, f, g, o = sigmoid(a[:, :u]), sigmoid(a[:, u:2 * u]), np.tanh(a[:, 2 * u:3 * u]), sigmoid(a[:, 3 * u:])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:
            xw = x[:, t] @ w["kernel"] + w["bias"][0]
            hw = h @ w["recurrent_kernel"] + w["bias"][1]
            z = sigmoid(xw[:, :u] + hw[:, :u])
            r = sigmoid(xw[:, u:2 * u] + hw[:, u:2 * u])
            hh = np.tanh(xw[:, 2 * u:] + r * hw[:, 2 * u:])
            h = z * h + (1 - z) * hh
        outputs.append(h)
    return np.stack(outputs, axis=1) if layer.return_sequences else h


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("sequences", [False, True])
def test_recurrent_forward_is_keras_cell_maths(cls, sequences):
    layer = cls(5, return_sequences=sequences, input_shape=(6, F))
    spec = Sequential([layer, Dense(2, "softmax")]).compile("categorical_crossentropy", "sgd")
    weights = random_biases(initial_weights(spec, seed=1))
    net = Network(spec, weights, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((3, 6, F))
    got = net.layers[0].forward(x)
    expected = keras_reference(layer, {k: v.astype(np.float64) for k, v in weights[0].items()}, x)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
