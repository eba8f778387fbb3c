"""The one helper of the backend contract suite: train a network on a backend
and on the NumPy reference from the same initial weights and batches, and
compare losses step by step, every weight, test loss and accuracy (in the
spirit of tinygrad's ``helper_test_op``). It takes the trainer options and
the window length, so that every option and setting is checked the same way."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import require_backend
from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.helpers import is_regression
from dlbench.plugin.manager import get_plugins
from dlbench.parity.verdict import REFERENCE_BACKEND
from dlbench.measure.session import prepare
from dlbench.network import ModelSpec
from dlbench.network.init import initial_weights


def trained(backend_name: str, spec: ModelSpec, data: Dataset, options: TrainerOptions = TrainerOptions(),
            batch_size: int = 8, steps: int = 25, window_steps: int = 1000):
    """(trainer, losses) after ``steps`` steps in windows of ``window_steps``,
    from the initial weights of seed 0 and the batch order of seed 0."""
    plan = BatchPlan(len(data.x_train), batch_size, epochs=1000, seed=0, max_steps=steps)
    trainer = prepare(get_plugins().backends[backend_name], spec, data, plan, options,
                      initial_weights(spec, 0)).trainer
    losses = np.concatenate([trainer.train(w.indices) for w in plan.windows(window_steps)])
    return trainer, losses


def assert_trains_like_numpy(backend_name: str, spec: ModelSpec, data: Dataset,
                             options: TrainerOptions = TrainerOptions(), batch_size: int = 8, steps: int = 25,
                             window_steps: int = 1000, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Losses within (rtol, atol); weights (same names, layouts, float32) and the
    test loss within 10 rtol; the test accuracy exactly (a regression's R^2
    within 10 rtol, 10 atol). The reference trains
    with the default options in one window."""
    require_backend(backend_name)
    reference, ref_losses = trained(REFERENCE_BACKEND, spec, data, TrainerOptions(), batch_size, steps)
    trainer, losses = trained(backend_name, spec, data, options, batch_size, steps, window_steps)
    assert losses.shape == ref_losses.shape
    np.testing.assert_allclose(losses, ref_losses, rtol=rtol, atol=atol, err_msg="loss history")
    for i, (layer, ref_layer) in enumerate(zip(trainer.weights(), reference.weights(), strict=True)):
        assert layer.keys() == ref_layer.keys(), f"layer {i} parameter names"
        for name in layer:
            assert layer[name].shape == ref_layer[name].shape, f"layer {i} {name} layout"
            assert layer[name].dtype == np.float32, f"layer {i} {name} dtype"
            np.testing.assert_allclose(layer[name], ref_layer[name], rtol=10 * rtol, atol=10 * atol,
                                       err_msg=f"layer {i} {name} after {steps} steps")
    (loss, score), (ref_loss, ref_score) = trainer.evaluate(), reference.evaluate()
    np.testing.assert_allclose(loss, ref_loss, rtol=10 * rtol, err_msg="test loss")
    if is_regression(data.y_test):  # R^2, a continuous function of the outputs, within the test loss's tolerance
        np.testing.assert_allclose(score, ref_score, rtol=10 * rtol, atol=10 * atol, err_msg="test R^2")
    else:
        assert score == pytest.approx(ref_score, abs=1e-9), "test accuracy"
