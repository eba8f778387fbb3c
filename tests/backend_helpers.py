"""One helper that trains a network on a backend and on the NumPy reference
from the same initial weights and batches, and compares losses and weights
(in the spirit of tinygrad's ``helper_test_op``)."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.run.session import prepare
from dlbench.spec import ModelSpec


def require_backend(name: str):
    """The backend, or a skip when its framework is not installed. A backend
    whose module failed to load is a failure, never a skip: a NameError in a
    built-in must not turn its tests into skips."""
    plugins = get_plugins()
    if name in plugins.load_errors:
        pytest.fail(f"backend {name} failed to load: {plugins.load_errors[name]}")
    backend = plugins.backends.get(name)
    if backend is None or not backend.availability().available:
        pytest.skip(f"backend {name} is not available")
    return backend


def toy_data(input_shape=(5,), n_classes=3, n_train=40, n_test=16, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, *input_shape)).astype(np.float32)
    y = rng.integers(0, n_classes, n_train + n_test)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], n_classes)


def train_on(backend_name: str, spec: ModelSpec, data: Dataset, batch_size: int, steps: int, seed: int = 0):
    """(losses, final weights, (test loss, test accuracy)) after ``steps`` steps."""
    plan = BatchPlan(len(data.x_train), batch_size, epochs=1000, seed=seed, max_steps=steps)
    trainer = prepare(get_plugins().backends[backend_name], spec, data, plan, TrainerOptions(seed=seed)).trainer
    losses = np.concatenate([trainer.train(w.indices) for w in plan.windows(max_window_steps=1000)])
    return losses, trainer.weights(), trainer.evaluate()


def assert_matches_numpy(backend_name: str, spec: ModelSpec, data: Dataset, batch_size: int = 8,
                         steps: int = 20, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    require_backend(backend_name)
    ref_losses, ref_weights, ref_eval = train_on("numpy", spec, data, batch_size, steps)
    losses, weights, evaluation = train_on(backend_name, spec, data, batch_size, steps)
    assert losses.shape == ref_losses.shape
    np.testing.assert_allclose(losses, ref_losses, rtol=rtol, atol=atol, err_msg="loss history")
    for i, (layer, ref_layer) in enumerate(zip(weights, ref_weights)):
        assert layer.keys() == ref_layer.keys(), f"layer {i} parameter names"
        for name in layer:
            assert layer[name].shape == ref_layer[name].shape, f"layer {i} {name} layout"
            assert layer[name].dtype == np.float32, f"layer {i} {name} dtype"
            np.testing.assert_allclose(layer[name], ref_layer[name], rtol=10 * rtol, atol=10 * atol,
                                       err_msg=f"layer {i} {name} after {steps} steps")
    np.testing.assert_allclose(evaluation[0], ref_eval[0], rtol=10 * rtol, atol=atol, err_msg="test loss")
    assert evaluation[1] == pytest.approx(ref_eval[1], abs=1e-9), "test accuracy"

