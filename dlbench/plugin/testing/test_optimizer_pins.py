"""Every backend's optimizer update (``conftest.py``: each registered backend)
pinned against one float64 formula of the canonical update
(dlbench/network/optimizers.py, schedules.py), clipping, weight decay and
schedules included, on a network whose gradient is known in closed form:
one linear unit under mean squared error; and the regression losses (mse, mae,
huber) trained by the newer optimizers as the NumPy reference trains them
(``compared_backend``: each backend but the reference)."""

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import toy_data
from dlbench.plugin.testing.like_numpy import trained
from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.parity.verdict import REFERENCE_BACKEND
from dlbench.plugin.backend import TrainerOptions
from dlbench.network import (SGD, Adadelta, Adam, AdamW, CosineDecay, Dense, ExponentialDecay, RMSprop, Sequential,
                             StepDecay, WarmupCosine, WarmupLinear)
from dlbench.network.init import initial_weights

OPTIMIZERS = {
    "sgd": SGD(0.1),
    "momentum": SGD(0.05, 0.9),
    # a large epsilon and unusual betas, so that where epsilon goes and which beta is which both matter
    "adam": Adam(0.05, beta_1=0.7, beta_2=0.9, epsilon=0.1),
    "nesterov-l2-step": SGD(0.05, 0.9, nesterov=True, weight_decay=0.1, schedule=StepDecay(2, gamma=0.5)),
    "adam-l2-clip-norm": Adam(0.05, beta_1=0.7, beta_2=0.9, epsilon=0.1, weight_decay=0.2, clip_global_norm=0.5),
    "adamw-warmup-cosine": AdamW(0.05, beta_1=0.7, beta_2=0.9, epsilon=0.1, weight_decay=0.3,
                                 schedule=WarmupCosine(warmup_steps=2, decay_steps=5, alpha=0.1)),
    "rmsprop": RMSprop(0.01, rho=0.8, epsilon=0.1),
    "rmsprop-centered-momentum-clip-value": RMSprop(0.01, rho=0.8, epsilon=0.05, momentum=0.5, centered=True,
                                                    clip_value=0.3, schedule=ExponentialDecay(0.8)),
    "adadelta-l2-warmup-linear": Adadelta(1.0, rho=0.7, epsilon=0.01, weight_decay=0.05,
                                          schedule=WarmupLinear(warmup_steps=1, decay_steps=4, alpha=0.2)),
    "sgd-cosine": SGD(0.1, schedule=CosineDecay(decay_steps=3, alpha=0.2)),
}
STEPS = 4


def prepared(optimizer, grads, params):
    """Clipping (global norm, then value) and coupled weight decay, in float64."""
    if optimizer.clip_global_norm:
        norm = np.sqrt(sum(np.sum(g**2) for g in grads))
        grads = [g * min(1.0, optimizer.clip_global_norm / (norm + 1e-6)) for g in grads]
    if optimizer.clip_value:
        grads = [np.clip(g, -optimizer.clip_value, optimizer.clip_value) for g in grads]
    if optimizer.weight_decay and optimizer.name != "adamw":
        grads = [g + optimizer.weight_decay * w for g, w in zip(grads, params)]
    return grads


def reference_step(o, w, g, s, lr, t):
    """One parameter's canonical update in float64 (``s``: its state, updated)."""
    if o.name == "sgd":
        s["velocity"] = o.momentum * s.get("velocity", 0.0) + g
        return w - lr * (g + o.momentum * s["velocity"] if o.nesterov else s["velocity"])
    if o.name in ("adam", "adamw"):
        w = w * (1 - lr * o.weight_decay) if o.name == "adamw" else w
        s["m"] = o.beta_1 * s.get("m", 0.0) + (1 - o.beta_1) * g
        s["v"] = o.beta_2 * s.get("v", 0.0) + (1 - o.beta_2) * g**2
        m_hat, v_hat = s["m"] / (1 - o.beta_1**t), s["v"] / (1 - o.beta_2**t)
        return w - lr * m_hat / (np.sqrt(v_hat) + o.epsilon)
    if o.name == "rmsprop":
        s["square_avg"] = o.rho * s.get("square_avg", 0.0) + (1 - o.rho) * g**2
        s["grad_avg"] = o.rho * s.get("grad_avg", 0.0) + (1 - o.rho) * g
        centered = s["grad_avg"] ** 2 if o.centered else 0.0
        s["buffer"] = o.momentum * s.get("buffer", 0.0) + g / (np.sqrt(s["square_avg"] - centered) + o.epsilon)
        return w - lr * s["buffer"]
    s["square_avg"] = o.rho * s.get("square_avg", 0.0) + (1 - o.rho) * g**2
    delta = np.sqrt(s.get("acc_delta", 0.0) + o.epsilon) / np.sqrt(s["square_avg"] + o.epsilon) * g
    s["acc_delta"] = o.rho * s.get("acc_delta", 0.0) + (1 - o.rho) * delta**2
    return w - lr * delta


def reference_update(optimizer, w, b, batches, x, t):
    """The canonical updates in float64, step by step."""
    states = [{}, {}]
    for step, rows in enumerate(batches, start=1):
        xb, tb = x[rows], t[rows]
        residual = xb @ w + b - tb  # (B, 1)
        grads = prepared(optimizer, [2 * xb.T @ residual / len(rows), 2 * residual.mean(axis=0)], [w, b])
        lr = optimizer.learning_rate * (optimizer.schedule.factor(step - 1) if optimizer.schedule else 1.0)
        w, b = (reference_step(optimizer, p, g, s, lr, step) for p, g, s in zip([w, b], grads, states))
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


#: the regression losses under the newer optimizers' options (each its own slots, clipping and schedule)
REGRESSIONS = {
    "mae-rmsprop-centered-momentum-clip-value": ("mae", RMSprop(0.01, momentum=0.5, centered=True, clip_value=0.2,
                                                                schedule=ExponentialDecay(0.95))),
    "huber-adamw-clip-norm-warmup-cosine": ({"name": "huber", "delta": 0.5},
                                            AdamW(0.02, weight_decay=0.1, clip_global_norm=0.05,
                                                  schedule=WarmupCosine(warmup_steps=5, decay_steps=25))),
    "mse-adadelta-l2-step": ("mse", Adadelta(1.0, weight_decay=0.01, schedule=StepDecay(10, 0.5))),
    "huber-sgd-nesterov-cosine": ({"name": "huber", "delta": 1.0},
                                  SGD(0.05, 0.9, nesterov=True, schedule=CosineDecay(decay_steps=20, alpha=0.1))),
}


def regression_data(n_train: int = 40, n_test: int = 16) -> Dataset:
    """Float targets (n, 2) on the scale of the outputs, residuals on both sides of huber's delta."""
    data = toy_data(input_shape=(5,), n_classes=3, n_train=n_train, n_test=n_test)
    y = np.random.default_rng(1).standard_normal((n_train + n_test, 2)).astype(np.float32)
    return Dataset(data.x_train, y[:n_train], data.x_test, y[n_train:], 0)


@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_regression_losses_train_with_the_newer_optimizers_as_the_reference(compared_backend, case):
    loss, optimizer = REGRESSIONS[case]
    spec = Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(2)]).compile(loss, optimizer)
    data = regression_data()
    reference, reference_losses = trained(REFERENCE_BACKEND, spec, data, steps=25)
    candidate, losses = trained(compared_backend.name, spec, data, steps=25, window_steps=7)
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-4, atol=1e-5, err_msg="loss history")
    for i, (layer, reference_layer) in enumerate(zip(candidate.weights(), reference.weights(), strict=True)):
        for name in layer:
            np.testing.assert_allclose(layer[name], reference_layer[name], rtol=1e-3, atol=1e-4,
                                       err_msg=f"layer {i} {name}")
    (test_loss, r2), (reference_loss, reference_r2) = candidate.evaluate(), reference.evaluate()
    np.testing.assert_allclose([test_loss, r2], [reference_loss, reference_r2], rtol=1e-3, atol=1e-5,
                               err_msg="test loss and R^2")
