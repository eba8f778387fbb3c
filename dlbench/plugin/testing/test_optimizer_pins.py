"""Every backend's optimizer update (``conftest.py``: each registered backend)
pinned against one float64 formula of the canonical update
(dlbench/network/model.py), on a network whose gradient is known in closed form:
one linear unit under mean squared error."""

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import toy_data
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions
from dlbench.network import SGD, Adam, Dense, Sequential
from dlbench.network.init import initial_weights

OPTIMIZERS = {
    "sgd": SGD(0.1),
    "momentum": SGD(0.05, 0.9),
    # a large epsilon and unusual betas, so that where epsilon goes and which beta is which both matter
    "adam": Adam(0.05, beta_1=0.7, beta_2=0.9, epsilon=0.1),
}
STEPS = 4


def reference_update(optimizer, w, b, batches, x, t):
    """The canonical updates in float64, step by step."""
    state = {"m": [np.zeros_like(w), np.zeros_like(b)], "v": [np.zeros_like(w), np.zeros_like(b)]}
    for step, rows in enumerate(batches, start=1):
        xb, tb = x[rows], t[rows]
        residual = xb @ w + b - tb  # (B, 1)
        grads = [2 * xb.T @ residual / len(rows), 2 * residual.mean(axis=0)]
        params = [w, b]
        for i, g in enumerate(grads):
            if optimizer.name == "sgd":
                state["m"][i] = optimizer.momentum * state["m"][i] + g
                params[i] = params[i] - optimizer.learning_rate * state["m"][i]
            else:
                b1, b2 = optimizer.beta_1, optimizer.beta_2
                state["m"][i] = b1 * state["m"][i] + (1 - b1) * g
                state["v"][i] = b2 * state["v"][i] + (1 - b2) * g**2
                m_hat = state["m"][i] / (1 - b1**step)
                v_hat = state["v"][i] / (1 - b2**step)
                params[i] = params[i] - optimizer.learning_rate * m_hat / (np.sqrt(v_hat) + optimizer.epsilon)
        w, b = params
    return w, b


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_update_matches_the_canonical_float64_formula(backend, optimizer):
    spec = Sequential([Dense(1, "linear", input_shape=(3,))]).compile("mse", OPTIMIZERS[optimizer])
    data = toy_data(input_shape=(3,), n_classes=2, n_train=24)
    weights = initial_weights(spec, seed=0)
    trainer = backend.build(spec, weights, TrainerOptions())
    trainer.place_data(data)
    plan = BatchPlan(len(data.x_train), 8, epochs=10, seed=0, max_steps=STEPS)
    batches = [rows for window in plan.windows(STEPS) for rows in window.indices]
    for window in plan.windows(STEPS):
        trainer.train(window.indices)
    w, b = reference_update(OPTIMIZERS[optimizer], weights[0]["kernel"].astype(np.float64),
                            weights[0]["bias"].astype(np.float64), batches,
                            data.x_train.astype(np.float64), data.y_train.astype(np.float64).reshape(-1, 1))
    trained = trainer.weights()[0]
    np.testing.assert_allclose(trained["kernel"], w, rtol=2e-5, atol=2e-6, err_msg="kernel")
    np.testing.assert_allclose(trained["bias"], b, rtol=2e-5, atol=2e-6, err_msg="bias")
