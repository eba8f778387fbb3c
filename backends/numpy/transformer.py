"""The NumPy backend's Transformer layers, from scratch: layer normalization,
multi-head self-attention, residual blocks, position embeddings and global
average pooling over time (conventions in :mod:`dlbench.network.transformer`).

Every layer works on a whole batch ``(B, T, d)`` at once, and attention on
every head at once: heads are an axis of 4-D arrays ``(B, H, T, K)`` whose
products are batched matmuls (``@`` broadcasts over the leading axes), never
a Python loop over samples or heads. Every product and sum goes through the
network's :class:`~dlbench_backends.numpy.precision.Arithmetic` (mixed
precision's rounded operands, and the parity certificate's rounding twins).
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.network.transformer import (SHORTCUT, GlobalAveragePool1D, LayerNormalization, PositionEmbedding, Residual,
                                      SelfAttention, inner_parameters)
from dlbench_backends.numpy.precision import PLAIN, Arithmetic


def _leading(x: np.ndarray) -> tuple:
    return tuple(range(x.ndim - 1))


class LayerNormLayer:
    """y = gamma x_hat + beta, x_hat = (x - mean) / sqrt(var + eps) over the last axis (d features).

    Backward (per position; sums over the d features):
    dE/dgamma = sum_positions dE/dy x_hat;  dE/dbeta = sum_positions dE/dy;
    dE/dx = (dx_hat - mean(dx_hat) - x_hat mean(dx_hat x_hat)) / sqrt(var + eps), dx_hat = gamma dE/dy.
    """

    def __init__(self, spec, params: dict, grads: dict, arith: Arithmetic = PLAIN):
        self.epsilon, self.params, self.grads, self.arith = spec.epsilon, params, grads, arith

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        d = x.shape[-1]
        centred = x - self.arith.sum(x, -1, keepdims=True) / d
        var = self.arith.sum(centred * centred, -1, keepdims=True) / d
        self.inv_std = 1.0 / np.sqrt(var + self.epsilon)
        self.x_hat = centred * self.inv_std
        return self.x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        d, r = dy.shape[-1], self.arith
        self.grads["gamma"][...] = r.sum(dy * self.x_hat, _leading(dy))
        self.grads["beta"][...] = r.sum(dy, _leading(dy))
        dx_hat = dy * self.params["gamma"]
        mean_dx_hat = r.sum(dx_hat, -1, keepdims=True) / d
        mean_dx_hat_x_hat = r.sum(dx_hat * self.x_hat, -1, keepdims=True) / d
        return (dx_hat - mean_dx_hat - self.x_hat * mean_dx_hat_x_hat) * self.inv_std


class SelfAttentionLayer:
    """Multi-head self-attention on X (B, T, d), H heads of size K.

    Forward: Q = X Wq + bq, K = X Wk + bk, V = X Wv + bv, (B, T, H*K) seen as
    (B, H, T, K); S = Q K^T / sqrt(K) (+ -inf above the diagonal if causal);
    P = softmax(S) over the keys; A = P V; Y = A Wo + bo with A back as (B, T, H*K).

    Backward, from G = dE/dY: dWo = A^T G, dbo = sum G, dA = G Wo^T;
    dP = dA V^T, dV = P^T dA; dS = P * (dP - sum_keys(dP * P)) / sqrt(K)
    (zero where P is masked); dQ = dS K, dK = dS^T Q;
    dW* = X^T d*, db* = sum d*, dX = dQ Wq^T + dK Wk^T + dV Wv^T.
    """

    def __init__(self, spec, params: dict, grads: dict, input_grad: bool = True, arith: Arithmetic = PLAIN):
        self.heads, self.key_dim, self.causal = spec.num_heads, spec.key_dim, spec.causal
        self.params, self.grads, self.input_grad, self.arith = params, grads, input_grad, arith
        self.scale = 1.0 / math.sqrt(spec.key_dim)

    def _project(self, x2: np.ndarray, part: str) -> np.ndarray:
        """x2 (B*T, d) -> (B*T, H*K) through the ``part`` projection."""
        z = self.arith.matmul(x2, self.params[f"{part}_kernel"])
        z += self.params[f"{part}_bias"]
        return z

    def _heads(self, z: np.ndarray, b: int, t: int) -> np.ndarray:
        return z.reshape(b, t, self.heads, self.key_dim).transpose(0, 2, 1, 3)  # (B, H, T, K)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        b, t, d = x.shape
        self.x2 = x.reshape(b * t, d)
        q, k, v = (self._heads(self._project(self.x2, part), b, t) for part in ("query", "key", "value"))
        scores = self.arith.matmul(q, k.transpose(0, 1, 3, 2))
        scores *= self.scale
        if self.causal:  # position i attends to j <= i: the lower triangle
            scores[..., np.triu(np.ones((t, t), bool), 1)] = -np.inf
        scores -= scores.max(axis=-1, keepdims=True)
        p = np.exp(scores, out=scores)
        p /= self.arith.sum(p, -1, keepdims=True)
        self.q, self.k, self.v, self.p = q, k, v, p
        self.a2 = self.arith.matmul(p, v).transpose(0, 2, 1, 3).reshape(b * t, -1)
        y = self.arith.matmul(self.a2, self.params["output_kernel"])
        y += self.params["output_bias"]
        return y.reshape(b, t, d)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        b, t, d = dy.shape
        r, g = self.arith, dy.reshape(b * t, d)
        self.grads["output_kernel"][...] = r.matmul(self.a2.T, g)
        self.grads["output_bias"][...] = r.bias_grad(g)
        da = self._heads(r.matmul(g, self.params["output_kernel"].T), b, t)
        dp = r.matmul(da, self.v.transpose(0, 1, 3, 2))
        dv = r.matmul(self.p.transpose(0, 1, 3, 2), da)
        ds = self.p * (dp - r.sum(dp * self.p, -1, keepdims=True))
        ds *= self.scale
        dq = r.matmul(ds, self.k)
        dk = r.matmul(ds.transpose(0, 1, 3, 2), self.q)
        dx = None
        for part, dz in (("query", dq), ("key", dk), ("value", dv)):
            dz2 = dz.transpose(0, 2, 1, 3).reshape(b * t, -1)
            self.grads[f"{part}_kernel"][...] = r.matmul(self.x2.T, dz2)
            self.grads[f"{part}_bias"][...] = r.bias_grad(dz2)
            if self.input_grad:
                term = r.matmul(dz2, self.params[f"{part}_kernel"].T)
                dx = term if dx is None else dx + term
        return None if dx is None else dx.reshape(b, t, d)


class PositionEmbeddingLayer:
    """y = x + P[:T];  dE/dP[:T] = sum_batch dE/dy (rows past T get 0);  dE/dx = dE/dy."""

    def __init__(self, params: dict, grads: dict, arith: Arithmetic = PLAIN):
        self.params, self.grads, self.arith = params, grads, arith

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self.length = x.shape[1]
        return x + self.params["position_embeddings"][:self.length]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        grad = self.grads["position_embeddings"]
        grad[...] = 0.0
        grad[:self.length] = self.arith.sum(dy, 0)
        return dy


class GlobalAveragePool1DLayer:
    """y = mean_t x[:, t];  dE/dx[:, t] = dE/dy / T for every t."""

    params: dict = {}
    grads: dict = {}

    def __init__(self, arith: Arithmetic = PLAIN):
        self.arith = arith

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self.shape = x.shape
        return self.arith.sum(x, 1) / x.shape[1]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.broadcast_to((dy / self.shape[1])[:, None, :], self.shape).copy()


class ResidualLayer:
    """y = s(x) + f(x), f the inner layers in order, s the shortcut's (x itself if
    none); dE/dx = s'(x)^T dE/dy + f'(x)^T dE/dy.

    The inner layers' parameters are views of the block's flat ``"<j>.<name>"``
    (and ``"shortcut.<k>.<name>"``) entries, so their gradients land in the
    network's flat buffer. Each branch gets its own copy of its input and of
    the gradient (activations work in place)."""

    def __init__(self, spec, in_shape, params: dict, grads: dict, state: dict, build):
        self.layers = self._chain(spec.layers, spec.inner_shapes(in_shape), "", params, grads, state, build)
        self.shortcut = self._chain(spec.shortcut, spec.shortcut_shapes(in_shape), SHORTCUT, params, grads, state,
                                    build)

    @staticmethod
    def _chain(layers, shapes, prefix: str, params: dict, grads: dict, state: dict, build) -> list:
        built = []
        for j, (layer, (shape, _)) in enumerate(zip(layers, shapes)):
            built.extend(build(layer, shape, inner_parameters(params, j, prefix), inner_parameters(grads, j, prefix),
                               inner_parameters(state, j, prefix)))
        return built

    @staticmethod
    def _through(layers: list, x: np.ndarray, training: bool) -> np.ndarray:
        for layer in layers:
            x = layer.forward(x, training)
        return x

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y = self._through(self.layers, x.copy(), training)  # the inner layers may work in place
        return (self._through(self.shortcut, x.copy(), training) if self.shortcut else x) + y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dz = dy.copy()
        for layer in reversed(self.layers):
            dz = layer.backward(dz)
        if self.shortcut:
            ds = dy.copy()
            for layer in reversed(self.shortcut):
                ds = layer.backward(ds)
            return ds + dz
        return dy + dz


TRANSFORMER_BUILDERS = {
    LayerNormalization: lambda layer, shape, params, grads, state, input_grad, arith, build:
        LayerNormLayer(layer, params, grads, arith),
    SelfAttention: lambda layer, shape, params, grads, state, input_grad, arith, build:
        SelfAttentionLayer(layer, params, grads, input_grad, arith),
    PositionEmbedding: lambda layer, shape, params, grads, state, input_grad, arith, build:
        PositionEmbeddingLayer(params, grads, arith),
    GlobalAveragePool1D: lambda layer, shape, params, grads, state, input_grad, arith, build:
        GlobalAveragePool1DLayer(arith),
    Residual: lambda layer, shape, params, grads, state, input_grad, arith, build:
        ResidualLayer(layer, shape, params, grads, state, build),
}
"""Spec layer type -> its NumPy layer, from (layer, input shape, parameter views,
gradient views, moving statistics, input_grad, arithmetic, the network's builder
for inner layers)."""
