"""A plain NumPy training loop, as someone would write it by hand, for the
overhead-benchmark networks. The harness's NumPy backend must be at least as fast.

``make_loop(kind, weights, x_train, y_train)`` returns ``train(indices) -> losses``:
one optimizer step per row of ``indices``, losses as a host array.
* ``mlp``: 64-256-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1 (digits-mlp);
* ``xor``: 2-10-1 ReLU net, sigmoid binary cross-entropy, Adam (xor-mlp);
* ``tiny``: 64-10-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1, batch 1 (the seed's
  batch size: per-step overhead, not arithmetic, decides its speed).
"""

import numpy as np


def make_loop(kind, weights, x_train, y_train):
    params = [p.copy() for layer in weights for p in (layer["kernel"], layer["bias"])]
    return {"mlp": _mlp, "xor": _xor, "tiny": _tiny}[kind](params, x_train, y_train)


def _mlp(params, x_train, y_train):
    w1, b1, w2, b2, w3, b3 = params
    lr = np.float32(0.1)

    def train(indices):
        losses = np.empty(len(indices))
        for i, idx in enumerate(indices):
            x, y = x_train[idx], y_train[idx]
            n = len(idx)
            h1 = np.maximum(x @ w1 + b1, 0)
            h2 = np.maximum(h1 @ w2 + b2, 0)
            z = h2 @ w3 + b3
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            s = e.sum(axis=1, keepdims=True)
            losses[i] = np.mean(np.log(s[:, 0]) - z[np.arange(n), y])
            dz = e / s
            dz[np.arange(n), y] -= 1
            dz /= n
            dh2 = (dz @ w3.T) * (h2 > 0)
            dh1 = (dh2 @ w2.T) * (h1 > 0)
            grads = (x.T @ dh1, dh1.sum(0), h1.T @ dh2, dh2.sum(0), h2.T @ dz, dz.sum(0))
            for p, g in zip((w1, b1, w2, b2, w3, b3), grads):
                p -= lr * g
        return losses

    return train


def _tiny(params, x_train, y_train):
    w1, b1, w2, b2 = params
    lr = np.float32(0.1)

    def train(indices):
        losses = np.empty(len(indices))
        for i, idx in enumerate(indices):
            x, y = x_train[idx], y_train[idx]
            n = len(idx)
            h1 = np.maximum(x @ w1 + b1, 0)
            z = h1 @ w2 + b2
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            s = e.sum(axis=1, keepdims=True)
            losses[i] = np.mean(np.log(s[:, 0]) - z[np.arange(n), y])
            dz = e / s
            dz[np.arange(n), y] -= 1
            dz /= n
            dh1 = (dz @ w2.T) * (h1 > 0)
            grads = (x.T @ dh1, dh1.sum(0), h1.T @ dz, dz.sum(0))
            for p, g in zip((w1, b1, w2, b2), grads):
                p -= lr * g
        return losses

    return train


def _xor(params, x_train, y_train):
    w1, b1, w2, b2 = params
    t_train = y_train.astype(np.float32).reshape(-1, 1)
    b1_, b2_, eps, lr = 0.9, 0.999, 1e-7, 0.001
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0

    def train(indices):
        nonlocal step
        losses = np.empty(len(indices))
        for i, idx in enumerate(indices):
            x, t = x_train[idx], t_train[idx]
            h = np.maximum(x @ w1 + b1, 0)
            z = h @ w2 + b2
            losses[i] = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
            dz = (1 / (1 + np.exp(-z)) - t) / z.size
            dh = (dz @ w2.T) * (h > 0)
            grads = (x.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0))
            step += 1
            for p, g, m_, v_ in zip(params, grads, m, v):
                m_ *= b1_
                m_ += (1 - b1_) * g
                v_ *= b2_
                v_ += (1 - b2_) * g * g
                p -= lr / (1 - b1_ ** step) * m_ / (np.sqrt(v_ / (1 - b2_ ** step)) + eps)
        return losses

    return train
