"""Every backend computes the loss as accurately as float32 allows, also when
it is small: late in training a batch's cross-entropy is ~1e-4 while the
logits are ~15, and a formula that adds the maximum back before subtracting
the label's logit rounds the loss to the maximum's ulp (JAX's did)."""

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions
from dlbench.run.session import prepare
from dlbench.spec import SGD, Dense, Sequential

BACKENDS = ["numpy", "torch", "tensorflow", "jax"]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_small_cross_entropy_keeps_its_digits(backend_name):
    backend = require_backend(backend_name)
    spec = Sequential([Dense(3, "softmax", input_shape=(2,))]).compile("categorical_crossentropy", SGD(1e-9))
    x = np.linspace(0.9, 1.1, 16, dtype=np.float32).reshape(8, 2)
    data = Dataset(x, np.zeros(8, np.int64), x[:4], np.zeros(4, np.int64), 3)
    # logits z = x W: the label's about 100, the others about 9.5 lower (per-sample loss ~1e-4)
    weights = [{"kernel": np.array([[50.0, 45.25, 45.25], [50.0, 45.25, 45.25]], np.float32),
                "bias": np.zeros(3, np.float32)}]
    trainer = prepare(backend, spec, data, BatchPlan(8, 8, epochs=1, seed=0), TrainerOptions(), weights=weights).trainer
    (loss,) = trainer.train(np.arange(8)[None, :])
    z = x.astype(np.float64) @ weights[0]["kernel"].astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    exact = float(np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[:, 0]))
    assert 1e-5 < exact < 1e-3
    # float32 rounds log(1 + small) to the ulp of 1; the maximum's ulp (100: 7.6e-6) is what a careless formula gives
    assert abs(float(loss) - exact) <= 2 * np.finfo(np.float32).eps
