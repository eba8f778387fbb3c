"""The NumPy backend's Transformer layers against finite differences, in float64,
for every layer and every mode; their forward passes against direct formulas."""

import math

import numpy as np
import pytest

from dlbench.network import (Dense, GlobalAveragePool1D, LayerNormalization, PositionEmbedding, Residual,
                          SelfAttention, Sequential)
from dlbench.network.init import initial_weights
from dlbench_backends.numpy.precision import Arithmetic
from dlbench_backends.numpy.network import Network
from dlbench_backends.numpy.transformer import SelfAttentionLayer
from test_numpy_gradients import numeric_gradient

HEAD = [GlobalAveragePool1D(), Dense(3, "softmax")]
NETWORKS = {
    "layer-norm": [LayerNormalization(), *HEAD],
    "layer-norm-large-epsilon": [LayerNormalization(epsilon=0.5), *HEAD],
    "attention": [SelfAttention(num_heads=2, key_dim=3), *HEAD],
    "attention-causal": [SelfAttention(num_heads=2, key_dim=3, causal=True), *HEAD],
    "attention-one-head-causal": [SelfAttention(num_heads=1, key_dim=5, causal=True), *HEAD],
    "position-embedding-longer-table": [PositionEmbedding(max_length=9), *HEAD],
    "position-embedding-then-attention": [PositionEmbedding(max_length=5), SelfAttention(3, 2, causal=True), *HEAD],
    "pre-norm-block": [Residual([LayerNormalization(), SelfAttention(2, 2, causal=True)]),
                       Residual([LayerNormalization(), SelfAttention(2, 3)]), *HEAD],
    "residual-feed-forward-gelu": [GlobalAveragePool1D(), Residual([Dense(8, "gelu"), Dense(4)]),
                                   Residual([Residual([Dense(4, "tanh")]), Dense(4, "gelu")]), Dense(3, "softmax")],
}


def _random_norm_parameters(weights, rng):
    for layer in weights:
        for name in layer:
            if name.rsplit(".", 1)[-1] in ("gamma", "beta", "query_bias", "key_bias", "value_bias",
                                           "position_embeddings"):
                layer[name] = rng.uniform(0.5, 1.5, layer[name].shape).astype(np.float32)


def _network(name: str, reverse: bool = False, dtype=np.float64):
    spec = Sequential(NETWORKS[name], input_shape=(5, 4)).compile("categorical_crossentropy", "sgd")
    weights = initial_weights(spec, seed=3)
    _random_norm_parameters(weights, np.random.default_rng(5))
    return spec, weights, Network(spec, weights, dtype=dtype, arith=Arithmetic(reverse=reverse))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward-order", "reversed-summation"])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_transformer_parameter_gradients_match_finite_differences(name, reverse):
    spec, _, net = _network(name, reverse)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, *spec.input_shape))
    targets = rng.integers(0, 3, 3)
    net.loss_and_gradients(x, targets)
    analytic = net.grad.copy()
    numeric = numeric_gradient(lambda: net.loss(net.logits(x.copy()), targets, net.output)[0], net.theta)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_input_gradient_matches_finite_differences(causal):
    spec = SelfAttention(num_heads=2, key_dim=3, causal=causal)
    params = {k: np.random.default_rng(1).standard_normal(s) for k, s in spec.param_shapes((4, 5)).items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    layer = SelfAttentionLayer(spec, params, grads)
    x = np.random.default_rng(2).standard_normal((2, 4, 5))
    upstream = np.random.default_rng(3).standard_normal((2, 4, 5))
    layer.forward(x)
    analytic = layer.backward(upstream)
    numeric = numeric_gradient(lambda: float(np.sum(layer.forward(x) * upstream)), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def _attention_by_loops(params, x, heads, key_dim, causal):
    """The textbook formula, one sample, one head and one query at a time."""
    b, t, d = x.shape
    out = np.zeros((b, t, heads * key_dim))
    for n in range(b):
        q, k, v = (x[n] @ params[f"{p}_kernel"] + params[f"{p}_bias"] for p in ("query", "key", "value"))
        for h in range(heads):
            cols = slice(h * key_dim, (h + 1) * key_dim)
            for i in range(t):
                seen = i + 1 if causal else t
                s = q[i, cols] @ k[:seen, cols].T / math.sqrt(key_dim)
                p = np.exp(s - s.max())
                out[n, i, cols] = (p / p.sum()) @ v[:seen, cols]
    return out @ params["output_kernel"] + params["output_bias"]


@pytest.mark.parametrize("causal", [False, True])
def test_attention_forward_is_the_scaled_dot_product_formula_per_head(causal):
    spec = SelfAttention(num_heads=3, key_dim=2, causal=causal)
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s) for k, s in spec.param_shapes((6, 4)).items()}
    x = rng.standard_normal((2, 6, 4))
    got = SelfAttentionLayer(spec, params, {}).forward(x)
    np.testing.assert_allclose(got, _attention_by_loops(params, x, 3, 2, causal), rtol=1e-12, atol=1e-12)


def test_causal_attention_output_ignores_later_positions():
    spec = SelfAttention(num_heads=2, key_dim=2, causal=True)
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s) for k, s in spec.param_shapes((5, 4)).items()}
    x = rng.standard_normal((1, 5, 4))
    changed = x.copy()
    changed[:, 3:] += 10.0
    layer = SelfAttentionLayer(spec, params, {})
    np.testing.assert_allclose(layer.forward(x)[:, :3], layer.forward(changed)[:, :3], rtol=1e-12)
    assert not np.allclose(layer.forward(x)[:, 3:], layer.forward(changed)[:, 3:])


def test_layer_norm_normalizes_each_position_with_the_biased_variance():
    _, _, net = _network("layer-norm-large-epsilon")
    x = np.random.default_rng(0).standard_normal((2, 5, 4)) * 3 + 1
    layer = net.layers[0]
    gamma, beta = layer.params["gamma"], layer.params["beta"]
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 0.5) * gamma + beta
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)


def test_residual_adds_its_input_and_keeps_the_callers_array():
    _, weights, net = _network("residual-feed-forward-gelu")
    x = np.random.default_rng(0).standard_normal((2, 4))
    before = x.copy()
    block = net.layers[1]
    w = {k: v.astype(np.float64) for k, v in weights[1].items()}
    h = x @ w["0.kernel"] + w["0.bias"]
    gelu = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
    np.testing.assert_allclose(block.forward(x), x + gelu @ w["1.kernel"] + w["1.bias"], rtol=1e-12)
    np.testing.assert_array_equal(x, before)


def test_reversed_summation_changes_the_last_bits_of_transformer_gradients():
    """The certificate's rounding twin must reach the new layers' own sums."""
    grads = {}
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    targets = rng.integers(0, 3, 3)
    for reverse in (False, True):
        _, _, net = _network("pre-norm-block", reverse, np.float32)
        net.loss_and_gradients(x, targets)
        grads[reverse] = net.grad.copy()
    np.testing.assert_allclose(grads[True], grads[False], rtol=1e-3, atol=1e-6)
    assert not np.array_equal(grads[True], grads[False])
